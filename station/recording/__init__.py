"""Crash-safe recording of a pass: bundles, event chunk files, reader, verify, export.

Recording never depends on MQTT. Entry points:

- :class:`~station.recording.bundle.BundleWriter` — what the daemon writes a pass with;
- :class:`~station.recording.recorder.Recorder` — the event-stream part on its own;
- :func:`~station.recording.reader.iter_blocks` — stream verified EventBlocks back;
- :func:`~station.recording.verify.verify_bundle`, :func:`~station.recording.reader.recover_bundle`;
- :func:`~station.recording.photon_hdf5.export_photon_hdf5` (imports h5py; not re-exported).

The on-disk format is specified in docs/recording.md.
"""

from station.recording.bundle import BundleWriter, bundle_dir_name
from station.recording.errors import ChunkError, RecordingError
from station.recording.reader import RecoveryReport, iter_blocks, recover_bundle
from station.recording.recorder import Gap, Recorder, RecordingSummary
from station.recording.verify import VerifyReport, verify_bundle

__all__ = [
    "BundleWriter",
    "ChunkError",
    "Gap",
    "Recorder",
    "RecordingError",
    "RecordingSummary",
    "RecoveryReport",
    "VerifyReport",
    "bundle_dir_name",
    "iter_blocks",
    "recover_bundle",
    "verify_bundle",
]

"""The station's MQTT bus: topics, the JSON envelope, graded command acks (docs/mqtt-api.md)."""

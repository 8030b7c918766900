"""The platform's shared library: settings, database, events, delivery, telemetry, auth."""

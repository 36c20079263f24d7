"""Where a sweep's runs execute: local worker processes, or a Ray cluster."""

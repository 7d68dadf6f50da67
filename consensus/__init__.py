"""Sans-IO PBFT replica: messages and clock ticks in, effects out. No IO in here."""

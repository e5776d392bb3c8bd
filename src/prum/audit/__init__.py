"""The tamper-evident audit log (hash chain, signed checkpoints, retention) and the
statistics without personal data that Reg. 2024/982 asks of every party."""

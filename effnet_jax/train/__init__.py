"""Training: state, optimizers and schedules (optim.py), EMA (ema.py), steps and loop."""

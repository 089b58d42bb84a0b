"""The one error a training run raises for a reason the user can fix."""


class TrainingError(RuntimeError):
    """The run cannot start or continue (the message says why and what to do)."""

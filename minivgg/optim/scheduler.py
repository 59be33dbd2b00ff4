"""The learning-rate schedule of §3.1: "the learning rate was initially set
to 10^-2, and then decreased by a factor of 10 when the validation set
accuracy stopped improving. In total, the learning rate was decreased 3
times".
"""


class ReduceLROnPlateau:
    """Divide the optimizer's lr by ``1/factor`` when a metric stops improving.

    mode: "max" for accuracy (the paper's choice), "min" for a loss.
    patience: epochs without improvement tolerated before a reduction.
    threshold: the smallest change that counts as an improvement.
    min_lr: the lr never goes below this.
    max_reductions: stop reducing after this many (the paper: 3); None = no cap.
    cooldown: epochs to wait after a reduction before counting again.
    """

    def __init__(self, optimizer, mode="max", factor=0.1, patience=2, threshold=1e-4,
                 min_lr=0.0, max_reductions=None, cooldown=0):
        if mode not in ("max", "min"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'max' or 'min', got {mode!r}")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        if patience < 0:
            raise ValueError(f"ReduceLROnPlateau: patience must be >= 0, got {patience}")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.min_lr, self.max_reductions = threshold, min_lr, max_reductions
        self.cooldown = cooldown
        self.best = None
        self.bad_epochs = 0
        self.cooldown_left = 0
        self.reductions = 0

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.threshold
        return value < self.best - self.threshold

    def step(self, value):
        """Record this epoch's metric; returns True when the lr was reduced."""
        value = float(value)
        if self._improved(value):
            self.best = value
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        capped = self.max_reductions is not None and self.reductions >= self.max_reductions
        if self.bad_epochs > self.patience and not capped:
            new_lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.bad_epochs = 0
            if new_lr < self.optimizer.lr:
                self.optimizer.lr = new_lr
                self.reductions += 1
                self.cooldown_left = self.cooldown
                return True
        return False

    def state_dict(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs,
                "cooldown_left": self.cooldown_left, "reductions": self.reductions}

    def load_state_dict(self, state):
        self.best = state["best"]
        self.bad_epochs = int(state["bad_epochs"])
        self.cooldown_left = int(state["cooldown_left"])
        self.reductions = int(state["reductions"])

"""Training: the fusion trainer and its distillation losses, the reference-backbone trainer, and the
state files, logs and schedule they share. The inference library (detailclip.*) never imports it, as
open_clip never imports open_clip_train."""

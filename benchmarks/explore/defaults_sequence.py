"""Exploration: why the defaults miss on the generated sequence task of
`benchmarks/defaults.py` (Embedding + LSTM, first-marker task, 10 epochs).

    python benchmarks/explore/defaults_sequence.py VARIANT EPOCHS

VARIANT: `auto` (the defaults), `strength<S>`, `init<M>` (initial mask),
`ramp<F>` (the strength ramps up over the first F of the run), `thirds`
(masks held for the first third, train in the second, frozen in the last),
each optionally prefixed with `dwg` (pruned weights keep receiving their
gradient: `w_eff = stop_gradient(w) * H(m) + (w - stop_gradient(w))`, forward
unchanged). Prints the test error, sparsity, per-layer sparsity and the
training accuracy per epoch. A record for docs/experiment-log.md, not a
benchmark.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import keras, numpy as np
import keras_scl
import defaults as D
variant = sys.argv[1]; epochs = int(sys.argv[2])
DWG = variant.startswith("dwg"); variant = variant[3:] if DWG else variant
train, test = D.first_marker_task()
keras.utils.set_random_seed(0)
model = D.sequence_model(32, 4)
opts = {}
if variant.startswith("init"):
    opts["initial_mask"] = float(variant[4:])
if variant.startswith("strength"):
    opts["strength"] = float(variant[8:])
if DWG:
    from keras import ops
    import tensorflow as tf
    def eff(self):
        out = []
        for w, m in self.masked_weights:
            v = w.value
            h = ops.cast(self.ste(m.value), v.dtype)
            out.append(tf.stop_gradient(v) * h + (v - tf.stop_gradient(v)))
        return out
    keras_scl.wrapper.SCLWrapper.effective_weights = eff
pruned = keras_scl.prune_scl(model, **opts)
class Ramp(keras.callbacks.Callback):
    def __init__(self, frac): super().__init__(); self.frac = frac
    def on_train_batch_begin(self, batch, logs=None):
        steps = self.params["steps"]; total = self.params["epochs"] * steps
        t = (self.epoch * steps + batch) / (self.frac * total)
        for w in keras_scl.wrapper.find_wrappers(self.model):
            w.strength_variable.assign(w.strength * min(1.0, t))
    def on_epoch_begin(self, epoch, logs=None): self.epoch = epoch
class Warmup(keras.callbacks.Callback):
    def __init__(self, until): super().__init__(); self.until = until
    def _set(self, value):
        for w in keras_scl.wrapper.find_wrappers(self.model):
            for m in w.masks: m.trainable = value
        self.model.make_train_function(force=True)
    def on_train_begin(self, logs=None):
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        if self.until > 0: self._set(False)
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.until and self.until > 0: self._set(True)
import math
if variant.startswith("thirds"):
    w, f = math.ceil(epochs / 3), math.ceil(2 * epochs / 3)
    cbs = [keras_scl.SCLCallback(freeze_masks_at_epoch=f), Warmup(w)]
else:
    cbs = [keras_scl.SCLCallback()]
if variant.startswith("ramp"):
    cbs.append(Ramp(float(variant[4:])))
pruned.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
h = pruned.fit(*train, batch_size=128, epochs=epochs, verbose=0, callbacks=cbs)
final = keras_scl.strip_scl(pruned)
rows = keras_scl.sparsity_report(final)
err = 100 * (1 - np.mean(np.argmax(final.predict(test[0], verbose=0), 1) == test[1]))
print(("dwg" if DWG else "") + variant, epochs, f"err {err:.2f}", f"sparsity {keras_scl.global_sparsity(rows):.4f}", {r.layer + "/" + r.weight: round(r.sparsity, 3) for r in rows}, "acc", [round(a, 3) for a in h.history["accuracy"]])

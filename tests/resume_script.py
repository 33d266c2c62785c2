"""Trains a small SCL model; run by test_resume.py in fresh processes.

    python resume_script.py MODE WORKDIR [EPOCHS]

MODE:
  full      train EPOCHS epochs in one go, write state.npz
  first     train 2 epochs, model.save(WORKDIR/m.keras)
  resume    load WORKDIR/m.keras, train to EPOCHS, write state.npz
  backup    train EPOCHS epochs with BackupAndRestore(WORKDIR/backup);
            if KILL_AT_EPOCH is set, SIGKILL itself mid-way through that epoch
"""

import os
import signal
import sys

import numpy as np
import tensorflow as tf

tf.config.experimental.enable_op_determinism()

import keras  # noqa: E402

import keras_scl  # noqa: E402

mode, workdir = sys.argv[1], sys.argv[2]
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 4
rng = np.random.default_rng(0)
x = rng.standard_normal((512, 16)).astype("float32")
y = (x[:, :4] @ rng.standard_normal((4, 3))).argmax(axis=1).astype("int32")


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )
    pruned = keras_scl.prune_scl(model, strength=3e-4, initial_mask=0.02)
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.Adam(3e-3)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return pruned


class LogEpochs(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        with open(os.path.join(workdir, "epochs.txt"), "a") as f:
            f.write(f"{epoch}\n")


def fit(model, initial_epoch, extra=()):
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=[*extra, keras_scl.SCLCallback(freeze_masks_at_epoch=3), LogEpochs()],
    )


def dump(model):
    state = {f"w{i}:{v.name}": v.numpy() for i, v in enumerate(model.weights)}
    state.update({f"o{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
    np.savez(os.path.join(workdir, "state.npz"), **state)


class KillMidEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 5:
            os.kill(os.getpid(), signal.SIGKILL)


if mode == "full":
    model = build()
    fit(model, 0)
    dump(model)
elif mode == "first":
    model = build()
    epochs = 2
    fit(model, 0)
    model.save(os.path.join(workdir, "m.keras"))
elif mode == "resume":
    model = keras.saving.load_model(os.path.join(workdir, "m.keras"))
    fit(model, 2)
    dump(model)
elif mode == "backup":
    model = build()
    extra = [keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup"))]
    if os.environ.get("KILL_AT_EPOCH"):
        extra.append(KillMidEpoch(int(os.environ["KILL_AT_EPOCH"])))
    fit(model, 0, extra)
    dump(model)
else:
    raise SystemExit(f"unknown mode {mode}")

"""Trains a small SCL model; run by test_multiworker.py in fresh processes.

    python multiworker_worker.py OUTDIR TARGET_SPARSITY

With `TF_CONFIG` set, the process is one worker of a
`MultiWorkerMirroredStrategy` cluster and writes OUTDIR/worker<index>.npz;
the chief (worker 0) also saves OUTDIR/model.keras, and the other workers
save to a temporary directory they delete, since every worker runs the same
program. Without `TF_CONFIG` it trains alone with no strategy, on the same
global batches, and writes OUTDIR/single.npz.
"""

import os
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf

tf.config.experimental.enable_op_determinism()

import keras  # noqa: E402

import keras_scl  # noqa: E402

# Full tracebacks in the log that the test shows when a worker fails.
keras.config.disable_traceback_filtering()

GLOBAL_BATCH = 64
EXAMPLES = 256
EPOCHS = 3


class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` whose `reduce` accepts what Keras 3 `fit` passes it.

    With more than one worker, Keras 3.15 `fit` calls `reduce` on the
    first batch, a nest that `reduce` rejects, and on every log, a scalar,
    with `axis=0`, which fails (keras-team/keras#20585). Here each leaf is
    reduced on its own, a scalar across replicas only.
    """

    def reduce(self, reduce_op, value, axis=None):
        def reduce_one(v):
            rank = self.experimental_local_results(v)[0].shape.rank
            return super(MultiWorkerStrategy, self).reduce(reduce_op, v, axis if rank else None)

        return tf.nest.map_structure(reduce_one, value)


outdir, target_sparsity = sys.argv[1], float(sys.argv[2])
if "TF_CONFIG" in os.environ:
    strategy = MultiWorkerStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
    )
    resolver = strategy.cluster_resolver
    name = f"{resolver.task_type}{resolver.task_id}"
    chief = resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )
else:
    strategy, name, chief = tf.distribute.get_strategy(), "single", None

rng = np.random.default_rng(0)
x = rng.standard_normal((EXAMPLES, 12)).astype("float32")
y = (x[:, :3] @ rng.standard_normal((3, 3))).argmax(axis=1).astype("int32")

# Every worker reads the whole dataset, batched by the global batch size;
# DATA sharding gives each worker its part of every global batch, so step k
# sees the same examples as step k of the single process.
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH, drop_remainder=True)
dataset = dataset.with_options(options)

with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(16, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )
    pruned = keras_scl.prune_scl(model, strength=1e-3, initial_mask=0.05)
    pruned.compile(
        optimizer=keras_scl.SCLOptimizer(keras.optimizers.SGD(0.02)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
# Budget mode, so the callback's writes (the controller's factor, the mask
# projection and freeze) run under the strategy too.
callback = keras_scl.SCLCallback(freeze_masks_at_epoch=EPOCHS - 1, target_sparsity=target_sparsity, controller_freq=2)
history = pruned.fit(dataset, epochs=EPOCHS, verbose=0, callbacks=[callback])

np.savez(
    os.path.join(outdir, f"{name}.npz"),
    replicas=strategy.num_replicas_in_sync,
    loss=np.array(history.history["loss"]),
    **{v.path: v.numpy() for v in pruned.weights},
)
if chief is not None:
    savedir = outdir if chief else tempfile.mkdtemp()
    pruned.save(os.path.join(savedir, "model.keras"))
    if not chief:
        shutil.rmtree(savedir)

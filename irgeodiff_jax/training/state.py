"""Train state: parameters, optimiser state and an EMA of the parameters in one pytree.

``TrainState`` is a ``flax.struct.PyTreeNode``: ``step``, ``params``, ``opt_state`` and
``ema_params`` are pytree leaves (jit/shard/checkpoint them), ``tx`` and ``ema_decay`` are static.
``apply_gradients`` applies one optimiser update and then the EMA update, and increments ``step``.
Because ``tx`` is static, jitted step functions retrace when given a state built with a different
optimiser object: build the optimiser once and reuse it.

Freezing: ``TrainState.create(..., trainable_mask=...)`` wraps ``tx`` in
``optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)``. Frozen
leaves get exactly zero updates, and the inner ``tx`` is built with ``optax.masked`` over the
trainable leaves only, so its moments (Adam ``mu``/``nu``) hold no entries for frozen leaves
(``optax.MaskedNode`` placeholders) and its gradient clipping sees only trainable gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

TRAINABLE, FROZEN = "trainable", "frozen"


class TrainStateError(ValueError):
    """Raised for invalid train-state arguments."""


def param_path_name(path: tuple) -> str:
    """``"a/b/kernel"`` for a pytree key path (dict keys, attribute names, sequence indices)."""
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def trainable_labels(params: Any, trainable_mask: Any) -> Any:
    """Pytree of ``"trainable"`` / ``"frozen"`` labels shaped like ``params``.

    Args:
        params: The parameter pytree.
        trainable_mask: A pytree of bools with the structure of ``params``, or a callable
            ``fn(path: str) -> bool`` on the ``/``-joined key path of each leaf (e.g.
            ``lambda p: not p.startswith("params/spectral_encoder/")``).

    Raises:
        TrainStateError: if a mask pytree does not match ``params`` or holds non-bools.
    """
    if callable(trainable_mask):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: TRAINABLE if trainable_mask(param_path_name(path)) else FROZEN, params
        )
    params_def = jax.tree_util.tree_structure(params)
    mask_def = jax.tree_util.tree_structure(trainable_mask)
    if params_def != mask_def:
        raise TrainStateError(f"trainable_mask structure {mask_def} does not match {params_def}")
    leaves = jax.tree_util.tree_leaves(trainable_mask)
    if not all(isinstance(leaf, bool) for leaf in leaves):
        raise TrainStateError("trainable_mask leaves must be Python bools")
    return jax.tree.map(lambda keep: TRAINABLE if keep else FROZEN, trainable_mask)


def freeze_untrainable(
    tx: optax.GradientTransformation, params: Any, trainable_mask: Any
) -> optax.GradientTransformation:
    """Wrap ``tx`` so that leaves with ``trainable_mask`` False get zero updates and no state."""
    labels = trainable_labels(params, trainable_mask)
    return optax.multi_transform({TRAINABLE: tx, FROZEN: optax.set_to_zero()}, labels)


class TrainState(flax.struct.PyTreeNode):
    """Parameters, optimiser state and parameter EMA.

    Attributes:
        step: int32 scalar, number of applied updates.
        params: Parameter pytree.
        opt_state: Optimiser state of ``tx``.
        ema_params: Exponential moving average of ``params`` (used for evaluation/sampling).
        tx: The optimiser (static).
        ema_decay: EMA decay ``d`` (static).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
    ema_decay: float = flax.struct.field(pytree_node=False)

    @classmethod
    def create(
        cls,
        params: Any,
        tx: optax.GradientTransformation,
        ema_decay: float = 0.999,
        trainable_mask: Any | Callable[[str], bool] | None = None,
    ) -> TrainState:
        """A fresh state at step 0 with ``ema_params`` a copy of ``params``.

        Args:
            params: Parameter pytree.
            tx: Optimiser (e.g. from ``optim.make_optimizer``).
            ema_decay: EMA decay in ``[0, 1]``.
            trainable_mask: Optional freezing spec (see ``trainable_labels``); None trains all.

        Raises:
            TrainStateError: for ``ema_decay`` outside ``[0, 1]`` or a bad ``trainable_mask``.
        """
        if not 0.0 <= ema_decay <= 1.0:
            raise TrainStateError(f"ema_decay must lie in [0, 1], got {ema_decay!r}")
        if trainable_mask is not None:
            tx = freeze_untrainable(tx, params, trainable_mask)
        return cls(
            step=jnp.zeros([], jnp.int32),
            params=params,
            opt_state=tx.init(params),
            ema_params=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
            tx=tx,
            ema_decay=float(ema_decay),
        )

    def apply_gradients(self, grads: Any) -> TrainState:
        """One optimiser step, then ``ema ← d·ema + (1 - d)·params_new``, then ``step += 1``.

        The EMA is computed as ``ema + (1 - d)(params_new - ema)`` (the same value), so a leaf
        whose parameters never change (a frozen leaf) keeps its EMA bit-exactly.
        """
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        rate = 1.0 - self.ema_decay
        ema_params = jax.tree.map(
            lambda ema, p: (ema + rate * (p - ema)).astype(ema.dtype), self.ema_params, params
        )
        return self.replace(
            step=self.step + 1, params=params, opt_state=opt_state, ema_params=ema_params
        )

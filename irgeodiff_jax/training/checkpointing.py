"""Thin Orbax wrapper: save the train state with a JSON side item, restore the newest readable one.

A checkpoint step directory holds two items: ``state`` (any pytree of arrays: params, optimiser
state, EMA, step, RNG) and ``extra`` (JSON: data-iterator position, stage, config fingerprint).
Orbax writes each step to a temporary directory and renames it when complete, so a killed save
never shadows an older checkpoint. A step that exists but cannot be read (truncated or corrupted
files) is skipped with a warning in favour of the previous one; a checkpoint whose array shapes do
not match the model being restored is an error, not a fallback.
"""

import logging
import os

import jax
import orbax.checkpoint as ocp

STATE, EXTRA = "state", "extra"


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that belongs to a different model."""


class _Unreadable(Exception):
    """A checkpoint step whose files cannot be read (internal: triggers the fallback)."""


def make_manager(
    directory: str, *, max_to_keep: int = 3, async_save: bool = True
) -> ocp.CheckpointManager:
    """A CheckpointManager in ``directory`` keeping the newest ``max_to_keep`` steps."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save
    )
    handlers = {STATE: ocp.StandardCheckpointHandler(), EXTRA: ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(
        os.path.abspath(directory), options=options, item_handlers=handlers
    )


def save(manager: ocp.CheckpointManager, step: int, state, extra: dict) -> None:
    """Save ``state`` and the JSON-serialisable ``extra`` at ``step`` (all processes call this)."""
    args = ocp.args.Composite(
        **{STATE: ocp.args.StandardSave(state), EXTRA: ocp.args.JsonSave(extra)}
    )
    manager.save(int(step), args=args, force=True)


def _path_name(path) -> str:
    parts = []
    for k in path:
        parts.append(str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k)))))
    return "/".join(parts)


def _shapes(tree) -> dict[str, tuple]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {_path_name(p): tuple(getattr(x, "shape", ())) for p, x in flat}


def check_compatible(manager: ocp.CheckpointManager, step: int, abstract_state) -> None:
    """Raise CheckpointError if the stored array shapes differ from ``abstract_state``'s."""
    meta = manager.item_metadata(step)[STATE]
    stored = _shapes(getattr(meta, "tree", meta)) if meta is not None else {}
    if not stored:
        raise _Unreadable("array metadata missing")
    wanted = _shapes(abstract_state)
    if stored.keys() != wanted.keys():
        diff = sorted(set(stored) ^ set(wanted))[:3]
        raise CheckpointError(
            f"checkpoint step {step} in {manager.directory} holds a different model "
            f"(parameters differ, e.g. {diff}): use a new --workdir or the matching config"
        )
    for name, shape in wanted.items():
        if stored[name] != shape:
            raise CheckpointError(
                f"checkpoint step {step} in {manager.directory} holds a different model shape: "
                f"{name} is {stored[name]} there but {shape} in this config"
            )


def restore_latest(manager: ocp.CheckpointManager, abstract_state):
    """Restore the newest readable checkpoint: ``(step, state, extra)``, or None if there is none.

    ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` (with shardings) from
    ``jax.eval_shape``. Unreadable steps are skipped with a warning; if steps exist but none can be
    read, CheckpointError is raised rather than silently starting from scratch.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    errors = []
    for step in steps:
        try:
            check_compatible(manager, step, abstract_state)
        except CheckpointError:
            raise
        except Exception as e:  # unreadable metadata: a truncated or corrupted checkpoint
            errors.append((step, e))
            logging.warning("checkpoint step %d is unreadable (%s); trying an older one", step, e)
            continue
        try:
            args = ocp.args.Composite(
                **{STATE: ocp.args.StandardRestore(abstract_state), EXTRA: ocp.args.JsonRestore()}
            )
            restored = manager.restore(step, args=args)
        except Exception as e:  # noqa: BLE001 - any read failure means "try the previous step"
            errors.append((step, e))
            logging.warning("checkpoint step %d is unreadable (%s); trying an older one", step, e)
            continue
        if errors:
            logging.warning(
                "fell back to checkpoint step %d (newer unreadable: %s)",
                step,
                [s for s, _ in errors],
            )
        return step, restored[STATE], dict(restored[EXTRA] or {})
    if errors:
        first = errors[0]
        raise CheckpointError(
            f"no readable checkpoint in {manager.directory}: step {first[0]}: "
            f"{type(first[1]).__name__}: {str(first[1]).splitlines()[0][:200]}"
        )
    return None

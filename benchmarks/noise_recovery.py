"""Where does sampling lose the molecule? Recovery of true latents noised to a given level.

    python -m benchmarks.noise_recovery --workdir=W --split=test --num=64

For each start time ``t0`` (``--starts``), the encoder latents ``z0`` of ``--num`` molecules of
``--split`` are noised to ``z_t0 = α z0 + σ ε`` and denoised back with the deterministic strided
sampler (DDIM, ``--stride`` timesteps a step, same ε̂ as the model's sampler, final step as in
``diffusion/sampler.py``; a self-conditioned denoiser reads its previous x̂0, zeros at the
first step), then decoded. Printed per ``t0``: latent RMSE of the result against
``z0``, and the fraction of molecules whose assigned bonds match the reference (and are valid).
``t0 = 0`` is the autoencoder alone. A model whose recovery breaks down at some ``t0`` fails at
that noise level; a breakdown only at ``t0 = T`` points at the sampler's first steps.

The decoder's own tolerance (``--decoder_noise``): the same latents plus zero-CoM noise of each
std ``δ`` (unit-scale latent units, as the diffusion sees them), decoded without denoising.

The last line of stdout is one JSON object ``{"t0": {t0: {"latent_rmse", "match", "valid"}},
"decoder_noise": {δ: {"match", "valid"}}}``.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from irgeodiff_jax.chem import bonds, scoring
from irgeodiff_jax.data import input_pipeline, sources
from irgeodiff_jax.diffusion import gaussian, schedules
from irgeodiff_jax.diffusion import sampler as sampler_lib
from irgeodiff_jax.models.chain import ModelChain
from irgeodiff_jax.training import workdir as workdirs
from irgeodiff_jax.utils.geometry import remove_mean_with_mask

_WORKDIR = flags.DEFINE_string("workdir", None, "trained run")
_SPLIT = flags.DEFINE_enum("split", "validation", list(sources.SPLITS), "molecules to noise")
_NUM = flags.DEFINE_integer("num", 64, "molecules (one batch)")
_STARTS = flags.DEFINE_list("starts", ["0", "50", "100", "200", "400", "700", "1000"], "t0")
_STRIDE = flags.DEFINE_integer("stride", 10, "timesteps per sampler step")
_DECODER_NOISE = flags.DEFINE_list("decoder_noise", ["0.05", "0.1", "0.2", "0.3"],
                                   "latent noise stds for the decoder alone")  # fmt: skip
flags.mark_flags_as_required(["workdir"])


def _identity(batch, positions, vocab, smiles) -> tuple[float, float]:
    match = valid = 0
    rows = [m for m in range(positions.shape[0]) if int(batch.id[m]) >= 0]  # padding rows: id -1
    for m in rows:
        real = np.asarray(batch.atom_mask[m])
        z = vocab[np.asarray(batch.atom_types[m])[real]]
        try:
            mol = bonds.geometry_to_mol(z, positions[m][real])
        except ValueError:
            mol = None
        r = scoring.score(mol, smiles[int(batch.id[m])])
        match, valid = match + r["match"], valid + r["valid"]
    return match / len(rows), valid / len(rows)


def main(argv):
    del argv
    bundle = workdirs.load_for_inference(_WORKDIR.value)
    config, params = bundle.config, bundle.params
    with config.unlocked():
        config.data.buckets = ()  # one batch of all --num molecules, padded to max_atoms
    schedule = schedules.schedule_from_config(config.diffusion)
    chain = ModelChain(bundle.models, schedule, config.diffusion.get("target", "eps"))
    it = input_pipeline.make_batch_iterator(
        config.data, _SPLIT.value, batch_size=_NUM.value, seed=0,
        shuffle=False, drop_remainder=False, num_epochs=1,
    )  # fmt: skip
    batch = next(iter(it))
    source = sources.get_source(config.data, _SPLIT.value)
    smiles = {int(source[i]["id"]): str(source[i]["smiles"]) for i in range(len(source))}
    vocab = np.asarray(tuple(config.data.atom_types))
    mask = jnp.asarray(batch.atom_mask)
    enc = chain.encode_spectrum(params, batch.spectrum_tokens, batch.formula_tokens)
    z_h = chain.embed_atoms(params, batch.atom_types, mask, enc)
    z0 = chain.encode_latent(params, batch.positions, z_h, mask)
    cond = chain.prepare(params, enc)

    @jax.jit
    def denoise(z_t, t_int, z_sc):  # (ε̂, x̂0); z_sc: a self-conditioned model's last x̂0
        t = jnp.full((z_t.shape[0],), t_int / schedule.num_steps, jnp.float32)
        return chain.predict(params, z_t, t, z_h, mask, cond, z_sc=z_sc)

    @jax.jit
    def ddim_step(z, z_sc, t_int, s_int):
        gt, gs = schedule.gamma(t_int), schedule.gamma(s_int)
        coef_z, coef_eps, _ = sampler_lib.ddim_coefficients(gt, gs, jnp.float32(0.0))
        eps_hat, x0_hat = denoise(z, t_int, z_sc)
        return remove_mean_with_mask(coef_z * z + coef_eps * eps_hat, mask), x0_hat

    decode = jax.jit(lambda z: chain.decode_latent(params, z, z_h, mask))
    results = {}
    for t0 in (int(s) for s in _STARTS.value):
        eps = gaussian.sample_zero_com_noise(jax.random.key(t0), z0.shape, mask)
        z = gaussian.q_sample(z0, jnp.full((z0.shape[0],), t0), eps, schedule)
        steps = max(t0 // _STRIDE.value, 1)
        grid = np.floor(np.linspace(t0, 0, steps + 1) + 0.5).astype(np.int32) if t0 else [0]
        z_sc = jnp.zeros_like(z)
        for t, s in zip(grid[:-1], grid[1:], strict=True):
            z, z_sc = ddim_step(z, z_sc, jnp.int32(t), jnp.int32(s))
        if t0:  # final step: x = (z_0 - sigma_0 eps_hat) / alpha_0
            eps_hat = denoise(z, 0, z_sc)[0]
            z = (z - schedule.sigma(jnp.int32(0)) * eps_hat) / schedule.alpha(jnp.int32(0))
        rmse = float(jnp.sqrt(jnp.sum(((z - z0) * mask[..., None]) ** 2) / (3 * jnp.sum(mask))))
        match, valid = _identity(batch, np.asarray(decode(z)), vocab, smiles)
        results[t0] = {"latent_rmse": rmse, "match": match, "valid": valid}
        print(f"t0 {t0:5d}  latent RMSE {rmse:8.4f}  match {match:.3f}  valid {valid:.3f}",
              flush=True)  # fmt: skip
    decoded = {}
    for i, std in enumerate(float(d) for d in _DECODER_NOISE.value):
        eps = gaussian.sample_zero_com_noise(jax.random.key(10_000 + i), z0.shape, mask)
        match, valid = _identity(batch, np.asarray(decode(z0 + std * eps)), vocab, smiles)
        decoded[std] = {"match": match, "valid": valid}
        print(f"decoder noise {std:5.3f}  match {match:.3f}  valid {valid:.3f}", flush=True)
    print(json.dumps({"t0": results, "decoder_noise": decoded}))


if __name__ == "__main__":
    app.run(main)

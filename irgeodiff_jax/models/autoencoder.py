"""Spectrum-conditioned geometric autoencoder (method.md §3; reference-notes.md §1.4).

* ``embed_atoms``: ``Embedding(num_atom_types, 16) * sqrt(16)`` -> ``SpecAtomCrossAttention``
  (atoms attend to real atoms and to the spectral encoding) -> ``z_h [B, N, 16]``, invariant
  (never sees coordinates) and spectrum-conditioned.
* ``encode``: 1-block EGNN on ``(x, z_h)``; its output positions, mean-removed, are the latent
  mean ``mu_x``. The encoder std is fixed (sigma_0, a diffusion-schedule value) and is applied
  by the caller: ``z_x = mu_x + sigma_0 * eps`` with zero-centre-of-mass ``eps``.
* ``decode``: 9-block EGNN on ``(z_x, z_h)``; output positions, mean-removed, are ``x_rec``.
* ``latent_scale``: a scalar parameter (1 at init) that no stage trains; the trainer may set it
  to the std of ``mu_x`` so the diffusion sees unit-scale latents (``models/chain.py``).

Both EGNNs use the layer-0 squared distances as the extra edge feature ``a_ij`` (EDM/GeoLDM
convention). Their feature outputs are never used by the reference, so no output projection is
built here. Positions are E(3)-equivariant (outputs are mean-removed, hence translation
invariant); padded atoms are ignored and come out as zero rows.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from irgeodiff_jax.models.attention import SpecAtomCrossAttention
from irgeodiff_jax.models.egnn import COORDS_RANGE, EGNN, Kernel
from irgeodiff_jax.models.layers import xavier_normal
from irgeodiff_jax.models.spectral_encoder import SpectralEncoding
from irgeodiff_jax.utils.geometry import remove_mean_with_mask

# Weight of the latent KL term 0.5*|mu_x|^2 in the AE loss (reference `kl_weight`).
KL_WEIGHT = 0.01


class Autoencoder(nn.Module):
    """Atom embedding + EGNN encoder/decoder.

    Attributes:
      num_atom_types: size of the atom-type vocabulary (QM9S: H, C, N, O, F -> 5).
      latent_h_dim: width of ``z_h`` (reference 16).
      attn_dim, attn_layers, attn_heads, attn_ff_dim, attn_hidden_dim: sizes of the
        atom-spectrum cross-attention (reference 512, 4, 8, 2048, 256).
      hidden_dim: EGNN width (reference 256).
      encoder_layers: encoder EGNN blocks (reference 1).
      decoder_layers: decoder EGNN blocks (reference 9).
      coords_range: EGNN tanh step scale (reference 15).
      kernel: EGNN message passing, ``"dense"`` or ``"sparse"``.
      dropout_rate: dropout of the cross-attention (reference 0.1).
      dtype: computation dtype (parameters float32; positions float32).
      scan_layers: run each EGNN's blocks as one rematerialised ``lax.scan`` (``EGNN``): same
        parameters and values, the backward pass holds one block's activations at a time.
    """

    num_atom_types: int = 5
    latent_h_dim: int = 16
    attn_dim: int = 512
    attn_layers: int = 4
    attn_heads: int = 8
    attn_ff_dim: int = 2048
    attn_hidden_dim: int = 256
    hidden_dim: int = 256
    encoder_layers: int = 1
    decoder_layers: int = 9
    coords_range: float = COORDS_RANGE
    kernel: Kernel = "dense"
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32
    scan_layers: bool = False

    def setup(self):
        self.latent_scale = self.param("latent_scale", nn.initializers.ones, (), jnp.float32)
        self.atom_embedding = nn.Embed(
            self.num_atom_types, self.latent_h_dim, embedding_init=xavier_normal()
        )
        self.atom_cross_attention = SpecAtomCrossAttention(
            out_dim=self.latent_h_dim,
            dim=self.attn_dim,
            num_layers=self.attn_layers,
            num_heads=self.attn_heads,
            ff_dim=self.attn_ff_dim,
            hidden_dim=self.attn_hidden_dim,
            dropout_rate=self.dropout_rate,
            dtype=self.dtype,
        )
        egnn = lambda layers: EGNN(  # noqa: E731
            hidden_dim=self.hidden_dim,
            num_layers=layers,
            out_dim=None,
            coords_range=self.coords_range,
            kernel=self.kernel,
            dtype=self.dtype,
            scan_layers=self.scan_layers,
        )
        self.encoder = egnn(self.encoder_layers)
        self.decoder = egnn(self.decoder_layers)

    def embed_atoms(
        self,
        atom_types: jax.Array,
        atom_mask: jax.Array,
        encoding: SpectralEncoding,
        *,
        deterministic: bool,
    ) -> jax.Array:
        """Spectrum-conditioned invariant atom features.

        Args:
          atom_types: ``[B, N]`` int type indices in ``[0, num_atom_types)`` (padded rows:
            any valid index, they are masked).
          atom_mask: ``[B, N]``, 1/True for real atoms.
          encoding: spectral encoding (tokens ``[B, K, D]``, mask ``[B, K]``).
          deterministic: disable dropout.

        Returns:
          ``z_h [B, N, latent_h_dim]`` float32, zero on padded rows.
        """
        h = self.atom_embedding(atom_types) * math.sqrt(self.latent_h_dim)
        kvs = self.atom_cross_attention.project_memory(encoding.tokens)
        z_h = self.atom_cross_attention(
            h, atom_mask, kvs, encoding.mask, deterministic=deterministic
        )
        return jnp.where(atom_mask.astype(bool)[..., None], z_h.astype(jnp.float32), 0)

    def encode(self, x: jax.Array, z_h: jax.Array, atom_mask: jax.Array) -> jax.Array:
        """Latent mean ``mu_x [B, N, 3]`` (mean-removed) of positions ``x [B, N, 3]``."""
        out = self.encoder(z_h, x, atom_mask)
        return remove_mean_with_mask(out.x, atom_mask)

    def decode(self, z_x: jax.Array, z_h: jax.Array, atom_mask: jax.Array) -> jax.Array:
        """Reconstructed positions ``[B, N, 3]`` (mean-removed) from latents ``z_x [B, N, 3]``."""
        out = self.decoder(z_h, z_x, atom_mask)
        return remove_mean_with_mask(out.x, atom_mask)

    def __call__(
        self,
        x: jax.Array,
        atom_types: jax.Array,
        atom_mask: jax.Array,
        encoding: SpectralEncoding,
        *,
        deterministic: bool,
    ) -> tuple[jax.Array, jax.Array]:
        """Noise-free round trip (used to initialise all parameters): ``(mu_x, decode(mu_x))``."""
        z_h = self.embed_atoms(atom_types, atom_mask, encoding, deterministic=deterministic)
        mu_x = self.encode(x, z_h, atom_mask)
        return mu_x, self.decode(mu_x, z_h, atom_mask)


def ae_loss(
    x: jax.Array,
    x_rec: jax.Array,
    mu_x: jax.Array,
    atom_mask: jax.Array,
    n_pad: int | None = None,
    kl_weight: float = KL_WEIGHT,
) -> dict[str, jax.Array]:
    """Autoencoder loss without the classifier term (method.md §3).

    ``recon = sum_atoms |x_rec - x|^2 / (3 * N)``, ``kl_x = 0.5 * |mu_x|^2`` and
    ``loss = recon + kl_weight * kl_x``, each averaged over the batch.

    Normalisation (deviation from the reference): the reference divides by ``3 * N_pad`` with
    ``N_pad`` the padded size of each PyTorch batch (its largest molecule), so a molecule's loss
    depends on what else is in its batch. With fixed padding (``N_pad = max_atoms = 29``) that
    would also change the loss scale. By default ``N`` here is each molecule's number of real
    atoms, which makes the loss independent of padding (adding padded atoms changes nothing).
    Pass ``n_pad`` to use the reference's ``3 * n_pad`` denominator instead.

    Args:
      x: target positions ``[B, N, 3]`` (mean-removed, padded rows zero).
      x_rec: reconstruction ``[B, N, 3]``.
      mu_x: latent means ``[B, N, 3]``.
      atom_mask: ``[B, N]``.
      n_pad: optional fixed atom count for the denominator (reference behaviour).
      kl_weight: weight of ``kl_x``.

    Returns:
      ``{"loss", "recon", "kl_x"}`` scalars (batch means) and ``"per_molecule_loss" [B]``.
    """
    mask = atom_mask.astype(jnp.float32)[..., None]
    sq_err = jnp.sum(((x_rec - x) * mask) ** 2, axis=(-2, -1))
    atoms = jnp.sum(mask, axis=(-2, -1)) if n_pad is None else jnp.full(sq_err.shape, n_pad)
    recon = sq_err / (3.0 * jnp.maximum(atoms, 1.0))
    kl_x = 0.5 * jnp.sum((mu_x * mask) ** 2, axis=(-2, -1))
    per_molecule = recon + kl_weight * kl_x
    return {
        "loss": jnp.mean(per_molecule),
        "recon": jnp.mean(recon),
        "kl_x": jnp.mean(kl_x),
        "per_molecule_loss": per_molecule,
    }

"""Tiny, randomly initialised diffusers/transformers components built in code (no downloads),
saved as real local model folders so the product's loaders are exercised unchanged."""

from __future__ import annotations

import json
from pathlib import Path


def _byte_chars() -> list[str]:
    """The byte-level BPE alphabet: printable Latin-1 bytes stand for themselves, the rest are
    shifted above 255 (the GPT-2/CLIP convention)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def tiny_clip_tokenizer(folder: Path):
    """A CLIPTokenizer over a byte-level vocabulary (every byte, alone and word-final) with no
    merges: enough to tokenize any prompt deterministically."""
    import inspect

    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    vocab = {}
    for c in chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab[c] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    if "vocab_file" in inspect.signature(CLIPTokenizer.__init__).parameters:  # transformers 4.x
        return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)


def tiny_text_encoder(vocab_size: int, hidden: int = 32, projection: bool = False):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPTextConfig(bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
                         hidden_size=hidden, intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
                         num_hidden_layers=2, vocab_size=vocab_size, max_position_embeddings=16,
                         projection_dim=hidden)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def tiny_stable_diffusion(folder: Path) -> Path:
    """A 32-px-latent... in fact 16×16-latent Stable Diffusion pipeline (UNet, VAE, CLIP text
    encoder, tokenizer, DDPM scheduler) written to ``folder`` with save_pretrained."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    folder = Path(folder)
    tok = tiny_clip_tokenizer(folder / "_tok")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=4, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), latent_channels=4,
                        norm_num_groups=4, sample_size=32)
    text = tiny_text_encoder(len(tok))
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                          beta_end=0.012, steps_offset=1, clip_sample=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return folder


def tiny_shap_e(folder: Path) -> Path:
    """A tiny Shap-E pipeline (prior transformer, CLIP text encoder with projection, tokenizer,
    Heun scheduler, renderer whose MLP weights come from a 32×16 latent) saved to ``folder``."""
    import torch
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEPipeline
    from diffusers.pipelines.shap_e import ShapERenderer

    folder = Path(folder)
    tok = tiny_clip_tokenizer(folder / "_tok")
    torch.manual_seed(0)
    text = tiny_text_encoder(len(tok), hidden=16, projection=True)
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=16, embedding_dim=16, num_embeddings=32,
                             embedding_proj_dim=16, time_embed_dim=64, num_layers=1, clip_embed_dim=32,
                             additional_embeddings=0, time_embed_act_fn="gelu", norm_in_type="layer",
                             encoder_hid_proj_type=None, added_emb_type=None)
    renderer = ShapERenderer(param_shapes=((8, 93), (8, 8), (8, 8), (8, 8)), d_latent=16, d_hidden=8, n_output=12,
                             background=(0.1, 0.1, 0.1))
    sched = HeunDiscreteScheduler(beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample",
                                  use_karras_sigmas=True, clip_sample=True, clip_sample_range=1.0)
    pipe = ShapEPipeline(prior=prior, text_encoder=text, tokenizer=tok, scheduler=sched, shap_e_renderer=renderer)
    pipe.save_pretrained(str(folder))
    return folder

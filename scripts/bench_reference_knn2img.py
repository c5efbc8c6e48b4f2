#!/usr/bin/env python3
"""Times the Python reference end to end the way scripts/knn2img.py samples one image, at the
real RDM 768x768 configuration with random weights, so that `rdm sample` can be timed on the
same files, the same machine and the same threads.

Two steps:

  make  writes the shared inputs into DIR (seeded, random weights):
          DIR/rdm/model.ckpt     a CompVis-layout checkpoint {"state_dict": ...}: UNet
                                 (model.diffusion_model.*), KL-f16 autoencoder
                                 (first_stage_model.*), schedule buffers; no EMA copy (see below)
          DIR/rdm/config.yaml    a copy of models/rdm-768.yaml
          DIR/clip/ViT-L-14.pt   an OpenAI CLIP ViT-L/14 state dict (torch.save)
          DIR/db.npy             N random 768-d image embeddings (the style database)
  run   follows knn2img.py: torch.load the checkpoint, build the model and load_state_dict,
        build the CLIP text encoder (FrozenCLIPTextEmbedder: clip.tokenize, encode_text,
        L2 norm), brute-force inner-product search of the L2-normalised database (what the
        ScaNN brute-force searcher computes), c = [text, k neighbours], uc = zeros_like(c),
        DDIMSampler.sample(S, eta=0, scale), decode_first_stage, clamp, PNG.
        Prints one JSON line: seconds for load, sampling, per UNet step, decode, total, and the
        peak RSS of the process.

The reference's own modules do all the work (UNetModel, Encoder/Decoder, DDIMSampler,
make_beta_schedule, CLIP's model.py and simple_tokenizer.py), imported from the checkouts named
by LDM_SRC and CLIP_SRC; nothing of them is copied here. What stands in for code that cannot
run on this machine: LatentDiffusion itself (needs pytorch_lightning; a small nn.Module exposes
the same sampling surface: apply_model, decode_first_stage, betas, alphas_cumprod,
alphas_cumprod_prev, num_timesteps, device), DDIMSampler.register_buffer (moves every buffer to
CUDA; here it keeps the device), ScaNN (numpy brute force), and missing packages (einops, tqdm,
ftfy: in-process stand-ins). The checkpoint has no model_ema.* copy: with one, knn2img holds
the raw and the EMA UNet (and ema_scope a third copy), 5.2 GB each, which does not fit this
machine's 24 GB next to the loaded state dict.

    LDM_SRC=.../latent-diffusion CLIP_SRC=.../CLIP /usr/bin/python3 \
        scripts/bench_reference_knn2img.py make /tmp/rdm768
    LDM_SRC=... CLIP_SRC=... /usr/bin/python3 scripts/bench_reference_knn2img.py run /tmp/rdm768 \
        --steps 10 --threads 2
"""
import argparse
import importlib.util
import json
import os
import resource
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_reference_ldm import install_stubs, load_config  # noqa: E402


def setup_paths():
    ldm, clip = os.environ.get("LDM_SRC"), os.environ.get("CLIP_SRC")
    if not ldm or not os.path.isdir(os.path.join(ldm, "ldm")):
        sys.exit("set LDM_SRC to a CompVis/latent-diffusion checkout")
    if not clip or not os.path.isfile(os.path.join(clip, "clip", "model.py")):
        sys.exit("set CLIP_SRC to an openai/CLIP checkout")
    sys.path.insert(0, ldm)
    install_stubs()  # einops, omegaconf, tqdm, ftfy stand-ins where missing
    return clip


def load_file_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def clip_modules(clip_src):
    model = load_file_module("clip_model_ref", os.path.join(clip_src, "clip", "model.py"))
    tok = load_file_module("clip_tokenizer_ref", os.path.join(clip_src, "clip", "simple_tokenizer.py"))
    return model, tok


def vit_l14(model_mod):
    # clip.model.build_model's arguments for ViT-L/14
    return model_mod.CLIP(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024,
                          vision_patch_size=14, context_length=77, vocab_size=49408, transformer_width=768,
                          transformer_heads=12, transformer_layers=12)


def build_ldm(params, with_encoder=True):
    """LatentDiffusion's sampling surface from the reference's own modules."""
    import torch
    from ldm.modules.diffusionmodules.model import Decoder, Encoder
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from ldm.modules.diffusionmodules.util import make_beta_schedule

    class Wrapper(torch.nn.Module):  # ldm.models.diffusion.ddpm.DiffusionWrapper, crossattn
        def __init__(self):
            super().__init__()
            self.diffusion_model = UNetModel(**params["unet_config"]["params"])

        def forward(self, x, t, c_crossattn):
            return self.diffusion_model(x, t, context=torch.cat(c_crossattn, 1))

    class FirstStage(torch.nn.Module):  # ldm.models.autoencoder.AutoencoderKL
        def __init__(self):
            super().__init__()
            fp = params["first_stage_config"]["params"]
            dd = fp["ddconfig"]
            if with_encoder:
                self.encoder = Encoder(**dd)
                self.quant_conv = torch.nn.Conv2d(2 * dd["z_channels"], 2 * fp["embed_dim"], 1)
            self.decoder = Decoder(**dd)
            self.post_quant_conv = torch.nn.Conv2d(fp["embed_dim"], dd["z_channels"], 1)

        def decode(self, z):
            return self.decoder(self.post_quant_conv(z))

    class LDM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Wrapper()
            self.first_stage_model = FirstStage()
            self.scale_factor = params["scale_factor"]
            self.num_timesteps = params["timesteps"]
            betas = make_beta_schedule("linear", self.num_timesteps, linear_start=params["linear_start"],
                                       linear_end=params["linear_end"])
            import numpy as np
            alphas_cumprod = np.cumprod(1.0 - betas, axis=0)
            prev = np.append(1.0, alphas_cumprod[:-1])
            f32 = lambda a: torch.tensor(a, dtype=torch.float32)
            self.register_buffer("betas", f32(betas))
            self.register_buffer("alphas_cumprod", f32(alphas_cumprod))
            self.register_buffer("alphas_cumprod_prev", f32(prev))

        @property
        def device(self):
            return self.betas.device

        def apply_model(self, x, t, cond):
            return self.model(x, t, c_crossattn=[cond])

        def decode_first_stage(self, z):
            return self.first_stage_model.decode(1.0 / self.scale_factor * z)

    return LDM()


def cmd_make(args, clip_src):
    import numpy as np
    import torch

    torch.manual_seed(args.seed)
    os.makedirs(os.path.join(args.dir, "rdm"), exist_ok=True)
    os.makedirs(os.path.join(args.dir, "clip"), exist_ok=True)
    params = load_config(args.config)
    with torch.no_grad():
        ldm = build_ldm(params)
        sd = ldm.state_dict()
        ckpt = os.path.join(args.dir, "rdm", "model.ckpt")
        torch.save({"state_dict": sd, "global_step": 0}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
        n_unet = sum(v.numel() for k, v in sd.items() if k.startswith("model.diffusion_model."))
        del ldm, sd
        shutil.copyfile(args.config, os.path.join(args.dir, "rdm", "config.yaml"))
        model_mod, _ = clip_modules(clip_src)
        clip = vit_l14(model_mod)
        torch.save(clip.state_dict(), os.path.join(args.dir, "clip", "ViT-L-14.pt"))
        shutil.copyfile(os.path.join(clip_src, "clip", "bpe_simple_vocab_16e6.txt.gz"),
                        os.path.join(args.dir, "clip", "bpe_simple_vocab_16e6.txt.gz"))
    rng = np.random.default_rng(args.seed)
    np.save(os.path.join(args.dir, "db.npy"), rng.standard_normal((args.db_size, 768)).astype(np.float32))
    print(json.dumps({"dir": args.dir, "unet_params": n_unet, "db_size": args.db_size}))


def cmd_run(args, clip_src):
    import numpy as np
    import torch
    from PIL import Image
    from ldm.models.diffusion.ddim import DDIMSampler

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    DDIMSampler.register_buffer = lambda self, name, attr: setattr(self, name, attr)
    t_start = time.perf_counter()
    params = load_config(os.path.join(args.dir, "rdm", "config.yaml"))
    # load_model_from_config
    pl_sd = torch.load(os.path.join(args.dir, "rdm", "model.ckpt"), map_location="cpu")
    sd = pl_sd["state_dict"]
    model = build_ldm(params)
    model.load_state_dict(sd, strict=False)
    model.eval()
    del pl_sd, sd
    # FrozenCLIPTextEmbedder(clip.load(jit=False) on the CPU: float32)
    model_mod, tok_mod = clip_modules(clip_src)
    clip = vit_l14(model_mod)
    clip.load_state_dict(torch.load(os.path.join(args.dir, "clip", "ViT-L-14.pt"), map_location="cpu"))
    clip = clip.float().eval()
    tokenizer = tok_mod.SimpleTokenizer(os.path.join(args.dir, "clip", "bpe_simple_vocab_16e6.txt.gz"))
    # Searcher: the database, L2-normalised for the brute-force inner-product search
    emb = np.load(os.path.join(args.dir, "db.npy"))
    db = emb / np.linalg.norm(emb, axis=1)[:, np.newaxis]
    sampler = DDIMSampler(model)
    t_loaded = time.perf_counter()

    step_times = []
    unet = model.model.diffusion_model
    orig_forward = unet.forward

    def timed_forward(*a, **k):
        t0 = time.perf_counter()
        out = orig_forward(*a, **k)
        step_times.append(time.perf_counter() - t0)
        return out

    unet.forward = timed_forward
    torch.manual_seed(args.seed)
    with torch.no_grad():
        sot, eot = tokenizer.encoder["<|startoftext|>"], tokenizer.encoder["<|endoftext|>"]
        ids = [sot] + tokenizer.encode(args.prompt) + [eot]
        tokens = torch.zeros(1, 77, dtype=torch.int)
        tokens[0, :len(ids)] = torch.tensor(ids)
        c = clip.encode_text(tokens)
        c = (c / torch.linalg.norm(c, dim=1, keepdim=True))[:, None, :]
        q = c[:, 0].numpy()
        q = q / np.linalg.norm(q, axis=1)[:, np.newaxis]
        nns = np.argsort(-(q @ db.T), axis=1)[:, :args.k]
        nn_emb = emb[nns]
        nn_emb = nn_emb / np.linalg.norm(nn_emb, axis=-1)[..., np.newaxis]
        c = torch.cat([c, torch.from_numpy(nn_emb)], dim=1)
        uc = torch.zeros_like(c)
        t_cond = time.perf_counter()
        side = args.size // 16
        samples, _ = sampler.sample(S=args.steps, conditioning=c, batch_size=c.shape[0], shape=[16, side, side],
                                    verbose=False, unconditional_guidance_scale=args.scale,
                                    unconditional_conditioning=uc, eta=0.0)
        t_sampled = time.perf_counter()
        x = model.decode_first_stage(samples)
        x = torch.clamp((x + 1.0) / 2.0, min=0.0, max=1.0)
        t_decoded = time.perf_counter()
        img = (255.0 * x[0].permute(1, 2, 0).numpy()).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(args.dir, "reference-sample.png"))
    t_end = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "python-reference-knn2img", "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "steps": args.steps, "unet_calls": len(step_times),
                      "load_s": t_loaded - t_start, "condition_s": t_cond - t_loaded,
                      "sample_s": t_sampled - t_cond, "per_step_s": sum(step_times) / max(1, len(step_times)),
                      "decode_s": t_decoded - t_sampled, "image_s": t_end - t_loaded,
                      "total_s": t_end - t_start, "peak_rss_mb": round(rss_mb, 1)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["make", "run"])
    ap.add_argument("dir")
    ap.add_argument("--config", default=os.path.join(HERE, "..", "models", "rdm-768.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db-size", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--scale", type=float, default=5.0)
    ap.add_argument("-k", type=int, default=19)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--prompt", default="a lighthouse in a storm")
    args = ap.parse_args()
    clip_src = setup_paths()
    (cmd_make if args.what == "make" else cmd_run)(args, clip_src)


if __name__ == "__main__":
    main()

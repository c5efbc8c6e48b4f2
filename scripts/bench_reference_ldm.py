#!/usr/bin/env python3
"""Times the Python reference (CompVis latent-diffusion) on the workloads of bench/bench_ldm.cpp:
one UNet step of the RDM 768x768 config (random weights, latent 2x16x48x48, context 2x20x768)
and one KL-f16 decode of a 768x768 image (latent 1x16x48x48), on the CPU, float32.

The reference code is imported from the checkout named by LDM_SRC (nothing of it is copied
here). Missing third-party packages are replaced in-process by small stand-ins: `einops`
(rearrange/repeat for the patterns the imported modules use) and `omegaconf.listconfig`.

    LDM_SRC=/path/to/latent-diffusion /usr/bin/python3 scripts/bench_reference_ldm.py \
        --what unet --threads 2 --reps 2

Prints one JSON line: seconds per call (each repetition and the mean) and the peak RSS of the
process. Run `unet` and `decode` in separate processes to get separate peak RSS figures.
"""
import argparse
import json
import os
import re
import resource
import sys
import time
import types


def install_package_stubs():
    """Stand-ins for packages the reference imports but that Debian 12 lacks or that only draw
    progress bars: tqdm (identity) and ftfy (text fixing; never reached by these benchmarks)."""
    for name, attr in (("tqdm", "tqdm"), ("ftfy", "fix_text")):
        try:
            __import__(name)
        except ImportError:
            m = types.ModuleType(name)
            setattr(m, attr, (lambda x, *a, **k: x))
            sys.modules[name] = m


def install_stubs():
    install_package_stubs()
    import torch

    def parse(side):
        # "b (h w) c" -> [["b"], ["h", "w"], ["c"]]
        groups, i, toks = [], 0, re.findall(r"\(|\)|[A-Za-z_][A-Za-z0-9_]*|\.\.\.|1", side)
        cur = None
        for t in toks:
            if t == "(":
                cur = []
            elif t == ")":
                groups.append(cur)
                cur = None
            elif cur is not None:
                cur.append(t)
            else:
                groups.append([t])
        return groups

    def rearrange(x, pattern, **sizes):
        lhs, rhs = [s.strip() for s in pattern.split("->")]
        lg, rg = parse(lhs), parse(rhs)
        if any("..." in g for g in lg + rg):
            # only 'b ... -> b (...)' is used (attention masks)
            return x.reshape(x.shape[0], -1)
        assert len(lg) == x.dim(), (pattern, x.shape)
        known = dict(sizes)
        for g, n in zip(lg, x.shape):
            unknown = [a for a in g if a not in known]
            prod = 1
            for a in g:
                if a in known:
                    prod *= known[a]
            if len(unknown) == 1:
                known[unknown[0]] = n // prod
            assert len(unknown) <= 1, pattern
        axes = [a for g in lg for a in g]
        x = x.reshape([known[a] for a in axes])
        out_axes = [a for g in rg for a in g]
        x = x.permute([axes.index(a) for a in out_axes])
        return x.reshape([int(torch.tensor([known[a] for a in g]).prod()) for g in rg])

    def repeat(x, pattern, **sizes):
        lhs, rhs = [s.strip() for s in pattern.split("->")]
        if pattern.replace(" ", "") == "b->bd":  # timestep_embedding(repeat_only=True)
            return x[:, None].expand(x.shape[0], sizes["d"])
        if pattern.replace(" ", "") == "bj->(bh)()j":
            return x.repeat_interleave(sizes["h"], dim=0)[:, None, :]
        raise NotImplementedError(pattern)

    einops = types.ModuleType("einops")
    einops.rearrange, einops.repeat = rearrange, repeat
    sys.modules.setdefault("einops", einops)
    try:
        import omegaconf.listconfig  # noqa: F401
    except ImportError:
        oc = types.ModuleType("omegaconf")
        lc = types.ModuleType("omegaconf.listconfig")

        class ListConfig(list):
            pass

        lc.ListConfig = ListConfig
        oc.listconfig = lc
        sys.modules["omegaconf"], sys.modules["omegaconf.listconfig"] = oc, lc


def load_config(path):
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)["model"]["params"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--what", choices=["unet", "decode"], required=True)
    ap.add_argument("--config", default=os.path.join(here, "..", "models", "rdm-768.yaml"))
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--context", type=int, default=20, help="context tokens (1 text + k neighbours)")
    ap.add_argument("--size", type=int, default=768, help="image side in pixels")
    ap.add_argument("--flops", action="store_true",
                    help="also count the call's floating-point operations (PyTorch profiler, with_flops) "
                         "and time fp32 GEMMs of the call's largest shapes: the compute bound of the call")
    args = ap.parse_args()

    src = os.environ.get("LDM_SRC")
    if not src or not os.path.isdir(os.path.join(src, "ldm")):
        sys.exit("set LDM_SRC to a CompVis/latent-diffusion checkout")
    sys.path.insert(0, src)
    install_stubs()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = load_config(args.config)
    f = 2 ** (len(params["first_stage_config"]["params"]["ddconfig"]["ch_mult"]) - 1)
    side = args.size // f

    if args.what == "unet":
        from ldm.modules.diffusionmodules.openaimodel import UNetModel

        model = UNetModel(**params["unet_config"]["params"]).eval()
        up = params["unet_config"]["params"]
        x = torch.randn(args.batch, up["in_channels"], side, side)
        t = torch.randint(0, params["timesteps"], (args.batch,))
        ctx = torch.randn(args.batch, args.context, up["context_dim"])
        call = lambda: model(x, t, context=ctx)
        shape = list(x.shape)
    else:
        from ldm.modules.diffusionmodules.model import Decoder

        fp = params["first_stage_config"]["params"]
        dd = dict(fp["ddconfig"])
        decoder = Decoder(**dd).eval()
        post_quant_conv = torch.nn.Conv2d(fp["embed_dim"], dd["z_channels"], 1).eval()
        z = torch.randn(1, fp["embed_dim"], side, side)
        call = lambda: decoder(post_quant_conv(z))  # AutoencoderKL.decode
        shape = list(z.shape)

    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.reps):
            t0 = time.perf_counter()
            out = call()
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                times.append(dt)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    record = {"what": args.what, "impl": "python-reference", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "input": shape, "output": list(out.shape),
              "seconds": times, "mean_s": sum(times) / len(times), "peak_rss_mb": round(rss_mb, 1)}
    if args.flops:
        record.update(compute_bound(torch, call))
    print(json.dumps(record))


def compute_bound(torch, call):
    """FLOPs of one call by op (the profiler's formulas: 2 x multiply-adds of conv2d, mm, addmm,
    bmm) and the fp32 GEMM rate of this process's BLAS on square and on the UNet's Linear shapes;
    gflop / best rate is the time the call needs at the machine's fp32 GEMM peak."""
    with torch.no_grad(), torch.autograd.profiler.profile(with_flops=True, record_shapes=True) as prof:
        call()
    gflop = {}
    for e in prof.key_averages():
        if e.flops:
            gflop[e.key.replace("aten::", "")] = round(e.flops / 1e9, 2)
    total = sum(v for k, v in gflop.items() if k in ("conv2d", "mm", "addmm", "bmm", "baddbmm"))
    rates = {}
    for m, k, n in ((2048, 2048, 2048), (4608, 448, 3584), (4608, 1792, 448), (1152, 896, 7168)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        t0, reps = time.perf_counter(), 5
        for _ in range(reps):
            torch.mm(a, b)
        rates[f"{m}x{k}x{n}"] = round(2.0 * m * k * n / ((time.perf_counter() - t0) / reps) / 1e9, 1)
    peak = max(rates.values())
    return {"gflop": gflop, "gflop_matmul_conv": round(total, 1), "gemm_gflops": rates,
            "seconds_at_gemm_peak": round(total / peak, 2)}


if __name__ == "__main__":
    main()

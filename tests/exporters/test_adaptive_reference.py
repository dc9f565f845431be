"""The vectorised cell check in exporters/_adaptive.py must give the mesh of the plain one it
replaced (kept below as the reference: (row, col) gathers, per-point masks and scaling)."""

from __future__ import annotations

import numpy as np
import pytest

from worldgen.registry import get_registry


def reference_cell_errors(points, inv_r, r0, c0, s, step):
    offs = np.arange(s + 1)
    gi, gj = np.meshgrid(offs, offs, indexing="ij")
    gi, gj = gi.reshape(-1), gj.reshape(-1)
    first = gi + gj <= s
    rows = r0[:, None] + gi[None, :]
    cols = c0[:, None] + gj[None, :]
    a, b = points[r0, c0], points[r0, c0 + s]
    c, dd = points[r0 + s, c0], points[r0 + s, c0 + s]
    worst_disp = np.zeros(len(r0), np.float32)
    worst_tex = np.zeros(len(r0), np.float32)
    for origin, ex, ey, sel, flip in ((a, b - a, c - a, first, False), (dd, c - dd, b - dd, ~first, True)):
        rr, cc = rows[:, sel], cols[:, sel]
        inv = inv_r[rr, cc]
        p = points[rr, cc]
        d = [p[..., k] * inv for k in range(3)]
        gx = (gj[sel] / s).astype(np.float32)[None, :]
        gy = (gi[sel] / s).astype(np.float32)[None, :]
        if flip:
            gx, gy = 1 - gx, 1 - gy
        n = np.cross(ex, ey)
        nn = np.einsum("ij,ij->i", n, n)[:, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            vx, vy = np.cross(ey, n) / nn, np.cross(n, ex) / nn

            def dot(vec):
                return d[0] * vec[:, 0, None] + d[1] * vec[:, 1, None] + d[2] * vec[:, 2, None]

            lam = np.einsum("ij,ij->i", n, origin)[:, None] / dot(n)
            e_disp = np.abs(np.float32(1.0) / lam - inv)
            bx = lam * dot(vx) - np.einsum("ij,ij->i", origin, vx)[:, None]
            by = lam * dot(vy) - np.einsum("ij,ij->i", origin, vy)[:, None]
            e_tex = np.maximum(np.abs(bx - gx), np.abs(by - gy)) * np.float32(s * step)
        bad = ~(lam > 0) | ~np.isfinite(e_tex)
        e_disp[bad] = np.inf
        e_tex[bad] = np.inf
        worst_disp = np.maximum(worst_disp, e_disp.max(axis=1))
        worst_tex = np.maximum(worst_tex, e_tex.max(axis=1))
    return worst_disp, worst_tex


def _procedural(width, height):
    from worldgen.backend import GenerateRequest

    backend = get_registry().backend("procedural").load({})
    return backend.generate(GenerateRequest(prompt="a misty fjord at dawn", width=width, height=height, steps=1,
                                            seed=0), None)


@pytest.mark.parametrize("world", ["procedural", "room"])
def test_vectorised_cell_check_builds_the_reference_mesh(kit, world, monkeypatch):
    from worldgen.exporters import _adaptive

    snapshot = _procedural(1024, 256) if world == "procedural" else kit.room_snapshot(512, 128)
    exporter = get_registry().exporter("glb")
    fast = exporter.export(snapshot, {})
    calls = []

    def reference(points, rays, inv_r, wv, r0, c0, s, step):
        calls.append(s)
        h = len(inv_r) // wv
        return reference_cell_errors(points.reshape(h, wv, 3), inv_r.reshape(h, wv), r0, c0, s, step)

    monkeypatch.setattr(_adaptive, "_cell_errors", reference)
    slow = exporter.export(snapshot, {})
    assert len(set(calls)) >= 3  # the reference ran at several levels
    fast_nodes, slow_nodes = kit.glb_nodes(fast), kit.glb_nodes(slow)
    assert fast_nodes.keys() == slow_nodes.keys()
    for name in fast_nodes:
        for key in ("POSITION", "TEXCOORD_0", "faces"):
            if slow_nodes[name].get(key) is not None:
                assert np.array_equal(fast_nodes[name][key], slow_nodes[name][key]), (name, key)
    assert fast == slow

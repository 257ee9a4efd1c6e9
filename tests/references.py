"""Straightforward float64 references for the SKD mathematics, written from the formulas."""

import math

import torch


def reference_similarity(a, b, similarity):
    a, b = a.double(), b.double()
    if similarity == "cosine":
        return float(a @ b / (a.norm() * b.norm()))
    if similarity == "dot":
        return float(a @ b)
    return -float(((a - b) ** 2).sum())


def brute_force_similarities(embeddings, similarity):
    """The full V x V similarity matrix in float64."""
    e = embeddings.double()
    if similarity == "cosine":
        n = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return n @ n.t()
    if similarity == "dot":
        return e @ e.t()
    return -torch.cdist(e, e).pow(2)


def brute_force_neighbours(embeddings, ids, k, similarity, exclude=()):
    sims = brute_force_similarities(embeddings, similarity)[torch.as_tensor(ids)]
    sims[:, list(exclude)] = float("-inf")
    sims[torch.arange(len(ids)), torch.as_tensor(ids)] = float("-inf")
    return sims.topk(k, dim=1)


def reference_soft_targets(embeddings, target, candidates, similarity, temperature):
    rows = []
    for t, cands in zip(target.tolist(), candidates.tolist()):
        sims = [reference_similarity(embeddings[t], embeddings[c], similarity) for c in [t] + cands]
        top = max(sims)
        exps = [math.exp((s - top) / temperature) for s in sims]
        rows.append([e / sum(exps) for e in exps])
    return torch.tensor(rows, dtype=torch.float64)


def reference_loss(lprobs, target, candidates, q, alpha, eps, pad):
    """Sums of (1 - alpha) L_ls + alpha L_skd, L_nll and L_skd, position by position."""
    V = lprobs.size(1)
    total = nll_total = skd_total = 0.0
    for i, t in enumerate(target.tolist()):
        if t == pad:
            continue
        row = lprobs[i].double()
        nll = -float(row[t])
        eps_i = eps / (V - 1)
        ls = (1 - eps - eps_i) * nll + eps_i * -float(row.sum())
        entries = [t] + candidates[i].tolist()
        skd = -sum(float(q[i, j]) * float(row[e]) for j, e in enumerate(entries))
        total += (1 - alpha) * ls + alpha * skd
        nll_total += nll
        skd_total += skd
    return total, nll_total, skd_total


def reference_gold_mass_temperature(similarities, rho):
    """tau with softmax(s / tau)[0] = rho for one row of similarities, by float64 bisection on log tau."""
    s = [float(x) for x in similarities]

    def gold_q(tau):
        top = max(s)
        exps = [math.exp((x - top) / tau) for x in s]
        return exps[0] / sum(exps)

    lo, hi = math.log(1e-12), math.log(1e12)  # gold_q falls as tau grows
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gold_q(math.exp(mid)) > rho else (lo, mid)
    return math.exp((lo + hi) / 2)

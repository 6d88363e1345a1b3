"""Honest baselines, computed on the task's own splits: what a recurrent network must beat.

Sentiment (any data set):

* the majority class of the training split, scored on test;
* a bag of words: logistic regression on the presence of each unigram and bigram of the
  training split, L2-regularised, its strength λ chosen on the validation split (accuracy, then
  loss), scored on test.  NumPy and SciPy only (sparse features, L-BFGS).

Speech (sequences of feature frames, a class each):

* one nearest neighbour under dependent dynamic time warping (DTW_D; full window, raw features):
  each test series takes the label of the training series the fewest warped squared distances
  away, the classic baseline of the UEA/UCR archive.

Character-level language models:

* the unigram entropy (characters' frequencies alone);
* a character n-gram model with Witten–Bell interpolation, its order n chosen on the validation
  split, scored on test in bits per character.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.sparse

#: the L2 strengths tried for the bag of words (on the mean cross-entropy; λ/2 ‖W‖²)
L2_GRID = (1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


# --------------------------------------------------------------------------- sentiment

def majority(train_labels, test_labels):
    """Test accuracy of always answering the training split's most common class."""
    common = np.bincount(np.asarray(train_labels)).argmax()
    return float(np.mean(np.asarray(test_labels) == common))


def ngrams(tokens, n=2):
    """The unigrams (and bigrams, ``n=2``) of a token list, as strings."""
    grams = list(tokens)
    if n >= 2:
        grams += [a + " " + b for a, b in zip(tokens, tokens[1:])]
    return grams


def presence_features(token_lists, index):
    """A sparse (documents, features) 0/1 matrix: which indexed n-grams each document holds."""
    rows, cols = [], []
    for row, tokens in enumerate(token_lists):
        present = {index[g] for g in ngrams(tokens) if g in index}
        rows += [row] * len(present)
        cols += sorted(present)
    data = np.ones(len(rows))
    return scipy.sparse.csr_matrix((data, (rows, cols)), shape=(len(token_lists), len(index)))


def fit_logistic(X, y, n_classes, l2):
    """Multinomial logistic regression: minimise mean cross-entropy + (l2 / 2) ‖W‖² (bias not
    penalised) with L-BFGS.  Returns (W (F, C), b (C,))."""
    n, F = X.shape
    onehot = np.eye(n_classes)[y]

    def loss_and_grad(theta):
        W, b = theta[:F * n_classes].reshape(F, n_classes), theta[F * n_classes:]
        logits = X @ W + b
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        loss = -(onehot * log_p).sum() / n + 0.5 * l2 * (W * W).sum()
        d = (p - onehot) / n
        return loss, np.concatenate([(X.T @ d + l2 * W).ravel(), d.sum(axis=0)])

    theta0 = np.zeros(F * n_classes + n_classes)
    result = scipy.optimize.minimize(loss_and_grad, theta0, jac=True, method="L-BFGS-B",
                                     options={"maxiter": 500})
    return result.x[:F * n_classes].reshape(F, n_classes), result.x[F * n_classes:]


def _scores(X, y, W, b):
    logits = X @ W + b
    logits -= logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(np.mean(log_p.argmax(axis=1) == y)), float(-log_p[np.arange(len(y)), y].mean())


def bag_of_words(tokens, labels, n_classes, l2_grid=L2_GRID):
    """The bag-of-words baseline on given splits: ``tokens`` and ``labels`` are dicts split →
    token lists / label arrays.  Returns a dict: test and val accuracy, the λ chosen on
    validation, the number of features, and every λ's validation accuracy."""
    index = {}
    for toks in tokens["train"]:
        for g in ngrams(toks):
            index.setdefault(g, len(index))
    X = {split: presence_features(tokens[split], index) for split in tokens}
    y = {split: np.asarray(labels[split]) for split in labels}
    tried = []
    for l2 in l2_grid:
        W, b = fit_logistic(X["train"], y["train"], n_classes, l2)
        accuracy, loss = _scores(X["val"], y["val"], W, b)
        tried.append((accuracy, -loss, l2, W, b))
    accuracy, _, l2, W, b = max(tried, key=lambda t: (t[0], t[1]))
    return {"test": _scores(X["test"], y["test"], W, b)[0], "val": accuracy, "l2": l2,
            "features": len(index), "tried": {f"{t[2]:g}": t[0] for t in tried}}


# --------------------------------------------------------------------------- characters

def unigram_bpc(train_ids, vocab_size):
    """The entropy of the training characters' frequencies, in bits per character."""
    counts = np.bincount(train_ids, minlength=vocab_size).astype(float)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


class WittenBell:
    """A character n-gram model with Witten–Bell interpolation, orders 0..n−1 of context:

        P(c | h) = (C(h c) + N(h) · P(c | h')) / (C(h) + N(h))      where C(h) > 0, else P(c | h')

    h' is h without its first character, N(h) the number of distinct characters seen after h,
    and the order-0 model is the add-one unigram, so every character of the vocabulary has
    some probability."""

    def __init__(self, train_ids, vocab_size, n):
        self.V, self.n = int(vocab_size), int(n)
        ids = np.asarray(train_ids, dtype=np.int64)
        self.unigram = (np.bincount(ids, minlength=self.V) + 1.0) / (len(ids) + self.V)
        self.tables = []                          # per context length k ≥ 1: sorted keys and counts
        for k in range(1, self.n):
            pair = self._contexts(ids, k) * self.V + ids
            pairs, pair_counts = np.unique(pair, return_counts=True)
            contexts, first = np.unique(pairs // self.V, return_index=True)
            totals = np.add.reduceat(pair_counts, first)
            distinct = np.diff(np.append(first, len(pairs)))
            self.tables.append((pairs, pair_counts, contexts, totals, distinct))

    def _contexts(self, ids, k):
        """The integer code of the k characters before each position, in base V + 1 (0 stands
        for "before the start", so every position has its context, the first ones included)."""
        code = np.zeros(len(ids), dtype=np.int64)
        for j in range(1, k + 1):
            shifted = np.zeros(len(ids), dtype=np.int64)
            shifted[j:] = ids[:len(ids) - j] + 1
            code = code * (self.V + 1) + shifted
        return code

    def log2_probs(self, ids):
        """log2 P(ids[t] | the characters before it, up to n − 1 of them), for every t."""
        ids = np.asarray(ids, dtype=np.int64)
        p = self.unigram[ids]
        for k, (pairs, pair_counts, contexts, totals, distinct) in enumerate(self.tables, 1):
            context = self._contexts(ids, k)
            where = np.searchsorted(contexts, context)
            seen = (where < len(contexts)) & (contexts[np.minimum(where, len(contexts) - 1)] == context)
            total = np.where(seen, totals[np.minimum(where, len(totals) - 1)], 0)
            n_after = np.where(seen, distinct[np.minimum(where, len(distinct) - 1)], 0)
            key = context * self.V + ids
            at = np.searchsorted(pairs, key)
            found = (at < len(pairs)) & (pairs[np.minimum(at, len(pairs) - 1)] == key)
            count = np.where(found, pair_counts[np.minimum(at, len(pair_counts) - 1)], 0)
            p = np.where(seen, (count + n_after * p) / np.maximum(total + n_after, 1), p)
        return np.log2(p)

    def bpc(self, ids):
        return float(-self.log2_probs(ids).mean())


def char_ngram(train_ids, val_ids, test_ids, vocab_size, orders=range(1, 11)):
    """The n-gram baseline: n chosen on validation bpc.  Returns a dict: n, val and test bpc,
    and every n's validation bpc."""
    tried = {int(n): WittenBell(train_ids, vocab_size, n).bpc(val_ids) for n in orders}
    n = min(tried, key=tried.get)
    model = WittenBell(train_ids, vocab_size, n)
    return {"n": n, "val": tried[n], "test": model.bpc(test_ids), "tried": tried}


__all__ = ["majority", "bag_of_words", "unigram_bpc", "char_ngram", "WittenBell", "L2_GRID"]


# --------------------------------------------------------------------------- sequences of frames

def dtw_distances(queries, references, chunk=32):
    """Dependent DTW between every query and every reference series (each (T, C), lengths
    free), full window, a (len(queries), len(references)) array::

        c(i, j) = ‖a_i − b_j‖²                    (all channels together: "dependent")
        D(i, j) = c(i, j) + min(D(i−1, j), D(i, j−1), D(i−1, j−1)),  D(0, 0) = c(0, 0)
        DTW(a, b) = D(T_a − 1, T_b − 1)

    The recursion runs once over the longest series' grid for a block of queries against all
    references at once (padded; a pair's value is read at its own last cell, which the padding
    cannot reach, since D(i, j) reads only cells at or before (i, j))."""
    refs, ref_len = _padded(references)
    out = np.empty((len(queries), len(references)))
    for lo in range(0, len(queries), chunk):
        block, block_len = _padded(queries[lo:lo + chunk])
        # c[q, r, i, j] = Σ_c (a_qi − b_rj)², by ‖a‖² + ‖b‖² − 2 a·b
        cost = ((block ** 2).sum(-1)[:, None, :, None] + (refs ** 2).sum(-1)[None, :, None, :]
                - 2 * np.einsum("qic,rjc->qrij", block, refs))
        np.maximum(cost, 0, out=cost)           # rounding must not make a distance negative
        D = np.full_like(cost, np.inf)
        Ti, Tj = cost.shape[2:]
        for i in range(Ti):
            for j in range(Tj):
                if i == 0 and j == 0:
                    best = 0.0
                else:
                    best = np.minimum(D[:, :, i - 1, j] if i else np.inf, D[:, :, i, j - 1] if j else np.inf)
                    if i and j:
                        best = np.minimum(best, D[:, :, i - 1, j - 1])
                D[:, :, i, j] = cost[:, :, i, j] + best
        q = np.arange(len(block))
        out[lo:lo + len(block)] = D[q[:, None], np.arange(len(refs))[None, :],
                                    block_len[:, None] - 1, ref_len[None, :] - 1]
    return out


def _padded(series):
    lengths = np.array([len(s) for s in series])
    out = np.zeros((len(series), lengths.max(), series[0].shape[1]))
    for k, s in enumerate(series):
        out[k, :len(s)] = s
    return out, lengths


def nearest_neighbour(distances, train_labels):
    """The label of each query's nearest reference (the first of equals)."""
    return np.asarray(train_labels)[np.argmin(distances, axis=1)]


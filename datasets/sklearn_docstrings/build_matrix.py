"""Build term_document.npz: a term-document matrix of scikit-learn's API docstrings.

Run once with scikit-learn 1.9.1 installed (the file in this folder was made so):

    python datasets/sklearn_docstrings/build_matrix.py

Documents are the public estimators, functions and displays that
``sklearn.utils.discovery`` lists, named ``module.Name``; the text of each is its docstring
up to its "Examples" or "References" section, with reStructuredText roles (``:term:``,
``:class:`` ...) removed. Terms are lowercase words of 3+ letters that are not in
scikit-learn's English stop-word list and occur in at least 5 documents and at most half
of them. Entry (i, j) counts how often term i occurs in document j. The docstrings are
scikit-learn's (BSD-3-Clause; its license is in LICENSE-scikit-learn.txt beside this file).

Saved arrays: ``data``, ``indices``, ``indptr``, ``shape`` (a CSR matrix, terms x docs),
``terms`` and ``docs`` (unicode arrays). Load with ``np.load(path)``; no pickle needed.
"""

import collections
import inspect
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.utils.discovery import all_displays, all_estimators, all_functions


def documents() -> dict[str, str]:
    docs = {}
    for name, obj in all_estimators() + all_functions() + all_displays():
        text = inspect.getdoc(obj) or ""
        text = re.split(r"\n(?:Examples|References)\n-{3,}", text)[0]
        module = obj.__module__.split(".")[1]  # sklearn.linear_model._ridge -> linear_model
        docs[f"{module}.{name}"] = re.sub(r":[a-z]+:", " ", text)
    return docs


def main() -> None:
    docs = documents()
    words = {
        name: [w for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in ENGLISH_STOP_WORDS]
        for name, text in docs.items()
    }
    df = collections.Counter(w for ws in words.values() for w in set(ws))
    terms = sorted(w for w, c in df.items() if 5 <= c <= len(docs) // 2)
    row = {w: i for i, w in enumerate(terms)}
    counts = sp.dok_array((len(terms), len(docs)), dtype=np.int64)
    for j, ws in enumerate(words.values()):
        for w, c in collections.Counter(w for w in ws if w in row).items():
            counts[row[w], j] = c
    A = sp.csr_array(counts)
    out = Path(__file__).with_name("term_document.npz")
    np.savez_compressed(
        out,
        data=A.data.astype(np.uint16),
        indices=A.indices.astype(np.int32),
        indptr=A.indptr.astype(np.int32),
        shape=np.array(A.shape),
        terms=np.array(terms),
        docs=np.array(list(docs)),
    )
    print(
        f"scikit-learn {sklearn.__version__}: {A.shape[0]} terms x {A.shape[1]} documents, "
        f"{A.nnz} nonzeros ({A.nnz / np.prod(A.shape):.1%}) -> {out} "
        f"({out.stat().st_size / 1024:.0f} KiB)"
    )


if __name__ == "__main__":
    main()

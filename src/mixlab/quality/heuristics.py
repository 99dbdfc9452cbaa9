"""Heuristic quality signals in the spirit of the Gopher, C4 and FineWeb filters, computed in batches.

:func:`compute_signals` takes a batch of texts and returns one row of ``q_*`` signals per text. All
work happens on whole batches with Arrow string kernels (split, trim, regex counts, dictionary
encoding) and numpy segment reductions (``bincount`` over the parent-document index of every word,
line or n-gram); there is no Python loop over documents. :func:`reference_signals` computes the same
signals for one text with plain Python and is the readable specification the batch code is tested
against.

Definitions (``words`` = whitespace-separated tokens; ``clean words`` = words with leading and trailing
punctuation trimmed, lowercased, empty ones dropped; ``lines`` = ``\\n``-separated lines with
surrounding whitespace trimmed, empty ones dropped; ``paragraphs`` = blocks separated by blank lines):

===========================  ===================================================================
``q_n_chars``                characters
``q_n_words``                words
``q_n_lines``                non-empty lines
``q_mean_word_len``          mean length of clean words (Gopher: 3..10)
``q_hash_ratio``             ``#`` per word (Gopher: <= 0.1)
``q_ellipsis_ratio``         ``...`` or ``…`` per word (Gopher: <= 0.1)
``q_bullet_line_frac``       lines starting with a bullet (Gopher: <= 0.9)
``q_ellipsis_line_frac``     lines ending with an ellipsis (Gopher: <= 0.3)
``q_alpha_word_frac``        words containing a letter (Gopher: >= 0.8)
``q_stopwords``              distinct Gopher stop words present (Gopher: >= 2)
``q_stopword_frac``          clean words that are English function words
``q_digit_frac``             digits per character
``q_upper_frac``             upper-case letters per letter
``q_non_alpha_frac``         non-space characters that are not letters
``q_junk_word_frac``         words with a symbol between letters/digits (keyboard mash: ``rqop#d1ck``)
``q_no_vowel_word_frac``     clean alphabetic words of 3+ letters without a vowel (``y`` counts)
``q_line_punct_frac``        lines ending in terminal punctuation (C4 / FineWeb: >= 0.12)
``q_short_line_frac``        lines of at most 30 characters (FineWeb: <= 0.67)
``q_newline_word_ratio``     newlines per word (FineWeb: <= 0.3)
``q_dup_line_frac``          lines that repeat an earlier line (Gopher: <= 0.3)
``q_dup_line_char_frac``     characters in repeated lines / characters (Gopher: <= 0.2)
``q_dup_para_frac``          paragraphs that repeat an earlier one (Gopher: <= 0.3)
``q_dup_para_char_frac``     characters in repeated paragraphs / characters (Gopher: <= 0.2)
``q_top_{2,3,4}gram_frac``   characters of the most frequent clean-word n-gram (Gopher: .20/.18/.16)
``q_dup_{5..10}gram_frac``   word characters covered by repeats of an earlier n-gram (Gopher: .15 .. .10)
``q_boilerplate_line_frac``  lines with a boilerplate phrase (policy, cookies, copyright, navigation)
``q_nav_line_frac``          lines that are lists of links: 2+ separators ``| » · >`` and no sentence end
``q_lorem_ipsum``            1 when "lorem ipsum" appears (C4)
``q_curly_brackets``         count of ``{`` (C4 drops pages with any; off by default for code)
``q_chars_per_token``        characters per training-tokenizer token (needs ``n_tokens``; NaN otherwise)
===========================  ===================================================================
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Gopher's stop words (a document needs at least two of them).
GOPHER_STOP_WORDS: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")

#: Common English function words, for the stop-word fraction.
FUNCTION_WORDS: tuple[str, ...] = (
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by",
    "can", "could", "do", "does", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if",
    "in", "into", "is", "it", "its", "may", "more", "my", "no", "not", "of", "on", "one", "or", "our",
    "out", "she", "should", "so", "some", "than", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "to", "up", "us", "was", "we", "were", "what", "when", "which", "who", "will", "with",
    "would", "you", "your",
)  # fmt: skip

#: Punctuation trimmed from both ends of a word (ASCII plus common typographic marks).
PUNCTUATION = string.punctuation + "“”‘’«»…–—·•§¶†‡′″„‚¡¿"
TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", "…", ":", ";")
BULLETS = ("•", "-", "*", "‣", "◦", "▪", "●")
ELLIPSES = ("...", "…")

#: Phrases that mark boilerplate lines (C4's policy substrings plus common navigation and footers).
BOILERPLATE_PHRASES: tuple[str, ...] = (
    "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies",
    "cookie settings", "all rights reserved", "©", "(c) 20", "copyright 20", "skip to main content",
    "skip to content", "you are here:", "sign in", "log in", "login", "register", "my account",
    "add to cart", "shopping cart", "subscribe", "newsletter", "posted in", "posted by", "related posts",
    "popular searches", "share:", "share this", "tags:", "categories:", "read more", "click here",
    "sitemap", "terms of service", "back to top", "previous:", "next:", "leave a comment",
    "comments", "advertise", "contact us", "about us",
)  # fmt: skip

_VOWELS = set("aeiouyáéíóúàèìòùäëïöüâêîôû")
_VOWEL_RE = "[" + "".join(sorted(_VOWELS)) + "]"
_JUNK_WORD_RE = r"[\p{L}\p{N}][^\p{L}\p{N}\s'’.,\-/:_()]+[\p{L}\p{N}]"
_JUNK_WORD_PY = re.compile(r"[^\W_][^\w\s'’.,\-/:()]+[^\W_]")
_NAV_SEP_RE = r"\s[|»·>]\s|\s\|$|^\|\s"
_NAV_SEP_PY = re.compile(r"\s[|»·>]\s|\s\|$|^\|\s")
_BOILER_RE = "|".join(re.escape(p) for p in BOILERPLATE_PHRASES)
_BOILER_PY = re.compile(_BOILER_RE)

TOP_NGRAMS: tuple[int, ...] = (2, 3, 4)
DUP_NGRAMS: tuple[int, ...] = (5, 6, 7, 8, 9, 10)

SIGNAL_COLUMNS: tuple[str, ...] = (
    "q_n_chars", "q_n_words", "q_n_lines", "q_mean_word_len", "q_hash_ratio", "q_ellipsis_ratio",
    "q_bullet_line_frac", "q_ellipsis_line_frac", "q_alpha_word_frac", "q_stopwords", "q_stopword_frac",
    "q_digit_frac", "q_upper_frac", "q_non_alpha_frac", "q_junk_word_frac", "q_no_vowel_word_frac",
    "q_line_punct_frac", "q_short_line_frac", "q_newline_word_ratio", "q_dup_line_frac",
    "q_dup_line_char_frac", "q_dup_para_frac", "q_dup_para_char_frac",
    *[f"q_top_{n}gram_frac" for n in TOP_NGRAMS], *[f"q_dup_{n}gram_frac" for n in DUP_NGRAMS],
    "q_boilerplate_line_frac", "q_nav_line_frac", "q_lorem_ipsum", "q_curly_brackets", "q_chars_per_token",
)  # fmt: skip

SHORT_LINE_CHARS = 30
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)


# ----------------------------------------------------------------------------------------------------
# batch helpers
# ----------------------------------------------------------------------------------------------------
def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _seg_sum(parent: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-document sum (or count when ``weights`` is None) of items with parent index ``parent``."""
    return np.bincount(parent, weights=weights, minlength=n).astype(np.float64)


def _explode(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Flatten a list array into (values, parent document index)."""
    values = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    return values, parent


def _bool(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False).astype(bool)


def _dup_counts(
    parent: np.ndarray, values: pa.Array, lengths: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per document: how many items repeat an earlier item of the same document, and their characters."""
    if len(values) == 0:
        return np.zeros(n), np.zeros(n)
    codes = values.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.int64)
    key = parent * (int(codes.max()) + 1) + codes
    dup = pd.Series(key).duplicated(keep="first").to_numpy()
    return _seg_sum(parent[dup], n), _seg_sum(parent[dup], n, lengths[dup])


NGRAM_CHUNK_WORDS = 65_536


def _ngram_signals(
    word_ids: np.ndarray, word_len: np.ndarray, parent: np.ndarray, n_docs: int, n_chars: np.ndarray
) -> dict[str, np.ndarray]:
    """Gopher n-gram repetition signals over clean words (ids), in chunks of whole documents.

    Chunks keep the hash tables of ``pandas.factorize``/``duplicated`` in cache (~10x faster than one
    table over millions of n-grams); each chunk is still one vectorized pass over many documents.
    """
    names = [f"q_top_{n}gram_frac" for n in TOP_NGRAMS] + [f"q_dup_{n}gram_frac" for n in DUP_NGRAMS]
    out = {name: np.zeros(n_docs) for name in names}
    doc_words = np.bincount(parent, minlength=n_docs)
    doc_start = np.concatenate([[0], np.cumsum(doc_words)])
    d0 = 0
    while d0 < n_docs:
        # extend the chunk by whole documents up to NGRAM_CHUNK_WORDS words (at least one document)
        d1 = int(np.searchsorted(doc_start, doc_start[d0] + NGRAM_CHUNK_WORDS, side="right")) - 1
        d1 = min(max(d1, d0 + 1), n_docs)
        w0, w1 = doc_start[d0], doc_start[d1]
        part = _ngram_chunk(word_ids[w0:w1], word_len[w0:w1], parent[w0:w1] - d0, d1 - d0, n_chars[d0:d1])
        for name in names:
            out[name][d0:d1] = part[name]
        d0 = d1
    return out


def _ngram_chunk(
    word_ids: np.ndarray, word_len: np.ndarray, parent: np.ndarray, n_docs: int, n_chars: np.ndarray
) -> dict[str, np.ndarray]:
    """Gopher n-gram repetition signals of one chunk of documents."""
    out: dict[str, np.ndarray] = {}
    n_words = len(word_ids)
    doc_words = np.bincount(parent, minlength=n_docs)
    starts = np.concatenate([[0], np.cumsum(doc_words)])[:-1]
    pos = np.arange(n_words) - starts[parent] if n_words else np.zeros(0, dtype=np.int64)
    remaining = doc_words[parent] - pos if n_words else np.zeros(0, dtype=np.int64)
    cum_len = np.concatenate([[0], np.cumsum(word_len)])
    total_word_chars = _seg_sum(parent, n_docs, word_len)
    ids = word_ids.astype(np.uint64) + np.uint64(1)
    h = np.zeros(n_words, dtype=np.uint64)
    doc_salt = parent.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
    with np.errstate(over="ignore"):
        for n in range(1, max(DUP_NGRAMS) + 1):
            # rolling hash of the n words starting at each position (valid where the window fits the doc)
            shifted = np.zeros(n_words, dtype=np.uint64)
            if n_words >= n:
                shifted[: n_words - n + 1] = ids[n - 1 :]
            h = h * _HASH_MULT + shifted
            if n not in TOP_NGRAMS and n not in DUP_NGRAMS:
                continue
            valid = np.flatnonzero(remaining >= n)
            name = f"q_top_{n}gram_frac" if n in TOP_NGRAMS else f"q_dup_{n}gram_frac"
            if len(valid) == 0:
                out[name] = np.zeros(n_docs)
                continue
            key = h[valid] ^ doc_salt[valid]
            vparent = parent[valid]
            if n in TOP_NGRAMS:
                codes, _ = pd.factorize(key)
                counts = np.bincount(codes)[codes]
                chars = (cum_len[valid + n] - cum_len[valid]) + (n - 1)
                best = np.zeros(n_docs)
                np.maximum.at(best, vparent, counts * chars * (counts > 1))
                out[name] = _ratio(best, n_chars)
            else:
                repeat = pd.Series(key).duplicated(keep="first").to_numpy()
                rstart = valid[repeat]
                cover = np.zeros(n_words + 1, dtype=np.int64)
                np.add.at(cover, rstart, 1)
                np.add.at(cover, rstart + n, -1)
                covered = np.cumsum(cover[:-1]) > 0
                out[name] = _ratio(_seg_sum(parent[covered], n_docs, word_len[covered]), total_word_chars)
    return out


ByteClass = Callable[[np.ndarray], np.ndarray]


def _is_letter(d: np.ndarray) -> np.ndarray:
    low = d | 0x20
    return (low >= 97) & (low <= 122)


def _is_upper(d: np.ndarray) -> np.ndarray:
    return (d >= 65) & (d <= 90)


def _is_lower(d: np.ndarray) -> np.ndarray:
    return (d >= 97) & (d <= 122)


def _is_digit(d: np.ndarray) -> np.ndarray:
    return (d >= 48) & (d <= 57)


def _is_space(d: np.ndarray) -> np.ndarray:
    return (d == 32) | ((d >= 9) & (d <= 13)) | ((d >= 0x1C) & (d <= 0x1F))


def _is_vowel(d: np.ndarray) -> np.ndarray:
    low = d | 0x20
    return (low == 97) | (low == 101) | (low == 105) | (low == 111) | (low == 117) | (low == 121)


def _is_nonascii(d: np.ndarray) -> np.ndarray:
    return d >= 0x80


def _is_plain(d: np.ndarray) -> np.ndarray:
    """Bytes that cannot make a keyboard-mash word: ASCII letters, digits and ' . , - / : _ ( )."""
    out = _is_letter(d) | _is_digit(d)
    for ch in b"'.,-/:_()":
        out |= d == ch
    return out


def _any_byte(d: np.ndarray) -> np.ndarray:
    return np.ones(len(d), dtype=bool)


def _byte_counts(arr: pa.Array, classes: Sequence[ByteClass]) -> list[np.ndarray]:
    """For every string of ``arr``: how many of its UTF-8 bytes fall in each byte class."""
    n = len(arr)
    bufs = arr.buffers()
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_type)[arr.offset : arr.offset + n + 1].astype(np.int64)
    if n == 0 or bufs[2] is None or offsets[-1] == offsets[0]:
        return [np.zeros(n, dtype=np.int64) for _ in classes]
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    rel = offsets - offsets[0]
    out = []
    many_segments = len(data) < 64 * n  # short strings (words): prefix sums beat reduceat
    for cls in classes:
        mask = cls(data)
        if many_segments:
            cs = np.zeros(len(data) + 1, dtype=np.int64)
            np.cumsum(mask, out=cs[1:])
            out.append(cs[rel[1:]] - cs[rel[:-1]])
        else:
            counts = np.add.reduceat(mask, np.minimum(rel[:-1], len(data) - 1), dtype=np.int64)
            counts[rel[1:] == rel[:-1]] = 0
            out.append(counts)
    return out


def _regex_counts_nonascii(
    arr: pa.Array, has_nonascii: np.ndarray, patterns: Sequence[str]
) -> list[np.ndarray]:
    """Exact regex match counts over the non-ASCII characters of the strings that have any."""
    out = [np.zeros(len(arr), dtype=np.int64) for _ in patterns]
    idx = np.flatnonzero(has_nonascii)
    if len(idx) == 0:
        return out
    residue = pc.replace_substring_regex(arr.take(pa.array(idx)), r"[\x00-\x7f]+", "")
    for o, pat in zip(out, patterns, strict=True):
        o[idx] = pc.count_substring_regex(residue, pat).to_numpy(zero_copy_only=False)
    return out


# ----------------------------------------------------------------------------------------------------
# the batch computation
# ----------------------------------------------------------------------------------------------------
def compute_signals(
    texts: Sequence[str] | pa.Array, n_tokens: Sequence[int] | np.ndarray | None = None
) -> pd.DataFrame:
    """Heuristic quality signals (``q_*`` columns, see the module docstring) of every text, in order.

    ``n_tokens`` (the pool's exact counts under the training tokenizer) adds ``q_chars_per_token``:
    keyboard mash and other non-words break into many short BPE pieces. Without it the column is NaN
    and rules on it do not apply.
    """
    arr = texts if isinstance(texts, pa.Array) else pa.array(list(texts), type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string()).fill_null("")
    n = len(arr)
    cols: dict[str, np.ndarray] = {}
    n_chars = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.float64)
    cols["q_n_chars"] = n_chars

    # -- words ---------------------------------------------------------------------------------------
    words, wparent = _explode(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(arr)))
    nonempty = pc.utf8_length(words).to_numpy(zero_copy_only=False) > 0  # "" splits into [""]
    if not nonempty.all():
        words, wparent = words.filter(pa.array(nonempty)), wparent[nonempty]
    n_words = _seg_sum(wparent, n)
    cols["q_n_words"] = n_words
    lower = pc.utf8_lower(arr)
    clean = pc.utf8_lower(pc.utf8_trim(words, characters=PUNCTUATION))
    clean_len = pc.utf8_length(clean).to_numpy(zero_copy_only=False).astype(np.float64)
    nonsym = clean_len > 0
    cols["q_mean_word_len"] = _ratio(
        _seg_sum(wparent[nonsym], n, clean_len[nonsym]), _seg_sum(wparent[nonsym], n)
    )
    cols["q_hash_ratio"] = _ratio(pc.count_substring(arr, "#").to_numpy(zero_copy_only=False), n_words)
    n_ell = pc.count_substring(arr, "...").to_numpy(zero_copy_only=False) + pc.count_substring(
        arr, "…"
    ).to_numpy(zero_copy_only=False)
    cols["q_ellipsis_ratio"] = _ratio(n_ell, n_words)
    w_letters, w_nonascii, w_plain, w_bytes = _byte_counts(
        words, [_is_letter, _is_nonascii, _is_plain, _any_byte]
    )
    (w_na_letters,) = _regex_counts_nonascii(words, w_nonascii > 0, [r"\pL"])
    has_alpha = (w_letters + w_na_letters) > 0
    cols["q_alpha_word_frac"] = _ratio(_seg_sum(wparent[has_alpha], n), n_words)
    stop_idx = pc.index_in(clean, value_set=pa.array(GOPHER_STOP_WORDS)).to_numpy(zero_copy_only=False)
    is_stop = ~np.isnan(stop_idx.astype(np.float64))
    stop_keys = np.unique(wparent[is_stop] * len(GOPHER_STOP_WORDS) + stop_idx[is_stop].astype(np.int64))
    cols["q_stopwords"] = _seg_sum(stop_keys // len(GOPHER_STOP_WORDS), n)
    is_func = _bool(pc.is_in(clean, value_set=pa.array(FUNCTION_WORDS)))
    cols["q_stopword_frac"] = _ratio(_seg_sum(wparent[is_func], n), _seg_sum(wparent[nonsym], n))
    junk = np.zeros(len(words), dtype=bool)
    maybe_junk = np.flatnonzero(w_plain < w_bytes)  # only words with a byte outside [A-Za-z0-9 '.,-/:_()]
    if len(maybe_junk):
        junk[maybe_junk] = _bool(pc.match_substring_regex(words.take(pa.array(maybe_junk)), _JUNK_WORD_RE))
    cols["q_junk_word_frac"] = _ratio(_seg_sum(wparent[junk], n), n_words)
    c_lower, c_vowel, c_nonascii = _byte_counts(clean, [_is_lower, _is_vowel, _is_nonascii])
    alpha_word = (c_lower == clean_len) & (clean_len >= 3)  # ASCII words: bytes == characters
    no_vowel = alpha_word & (c_vowel == 0)
    na_idx = np.flatnonzero(c_nonascii > 0)
    if len(na_idx):
        na_words = clean.take(pa.array(na_idx))
        na_alpha = _bool(pc.match_substring_regex(na_words, r"^\pL{3,}$"))
        alpha_word[na_idx] = na_alpha
        no_vowel[na_idx] = na_alpha & ~_bool(pc.match_substring_regex(na_words, _VOWEL_RE))
    cols["q_no_vowel_word_frac"] = _ratio(_seg_sum(wparent[no_vowel], n), _seg_sum(wparent[alpha_word], n))

    # -- characters (ASCII bytes by table lookup; non-ASCII characters by regex on what is left) --------
    letters, upper, digits, spaces, nonascii = _byte_counts(
        arr, [_is_letter, _is_upper, _is_digit, _is_space, _is_nonascii]
    )
    na_letters, na_upper, na_spaces = _regex_counts_nonascii(
        arr, nonascii > 0, [r"\pL", r"\p{Lu}", r"[\p{Z}\x{85}]"]
    )
    n_letters, n_upper, n_space = letters + na_letters, upper + na_upper, spaces + na_spaces
    cols["q_digit_frac"] = _ratio(digits, n_chars)
    cols["q_upper_frac"] = _ratio(n_upper, n_letters)
    cols["q_non_alpha_frac"] = _ratio(n_chars - n_space - n_letters, n_chars - n_space)

    # -- lines ---------------------------------------------------------------------------------------
    raw_lines, lparent = _explode(pc.split_pattern(arr, "\n"))
    lines = pc.utf8_trim_whitespace(raw_lines)
    line_len = pc.utf8_length(lines).to_numpy(zero_copy_only=False).astype(np.float64)
    keep = line_len > 0
    lines = lines.filter(pa.array(keep))
    lparent, line_len = lparent[keep], line_len[keep]
    n_lines = _seg_sum(lparent, n)
    cols["q_n_lines"] = n_lines
    bullet = np.zeros(len(lines), dtype=bool)
    for b in BULLETS:
        bullet |= _bool(pc.starts_with(lines, b))
    cols["q_bullet_line_frac"] = _ratio(_seg_sum(lparent[bullet], n), n_lines)
    ell_line = _bool(pc.ends_with(lines, "...")) | _bool(pc.ends_with(lines, "…"))
    cols["q_ellipsis_line_frac"] = _ratio(_seg_sum(lparent[ell_line], n), n_lines)
    punct = np.zeros(len(lines), dtype=bool)
    for p in TERMINAL_PUNCTUATION:
        punct |= _bool(pc.ends_with(lines, p))
    cols["q_line_punct_frac"] = _ratio(_seg_sum(lparent[punct], n), n_lines)
    short = line_len <= SHORT_LINE_CHARS
    cols["q_short_line_frac"] = _ratio(_seg_sum(lparent[short], n), n_lines)
    n_newlines = pc.count_substring(arr, "\n").to_numpy(zero_copy_only=False)
    cols["q_newline_word_ratio"] = _ratio(n_newlines, n_words)
    dup_l, dup_lc = _dup_counts(lparent, lines, line_len, n)
    cols["q_dup_line_frac"] = _ratio(dup_l, n_lines)
    cols["q_dup_line_char_frac"] = _ratio(dup_lc, n_chars)
    lower_lines = pc.utf8_lower(lines)
    boiler = _bool(pc.match_substring_regex(lower_lines, _BOILER_RE))
    cols["q_boilerplate_line_frac"] = _ratio(_seg_sum(lparent[boiler], n), n_lines)
    nav = _bool(pc.count_substring_regex(lines, _NAV_SEP_RE)) & ~punct
    nav &= pc.count_substring_regex(lines, _NAV_SEP_RE).to_numpy(zero_copy_only=False) >= 2
    cols["q_nav_line_frac"] = _ratio(_seg_sum(lparent[nav], n), n_lines)

    # -- paragraphs ----------------------------------------------------------------------------------
    paras, pparent = _explode(pc.split_pattern_regex(pc.utf8_trim_whitespace(arr), r"\n[ \t\r]*\n\s*"))
    para_len = pc.utf8_length(paras).to_numpy(zero_copy_only=False).astype(np.float64)
    pkeep = para_len > 0
    paras, pparent, para_len = paras.filter(pa.array(pkeep)), pparent[pkeep], para_len[pkeep]
    dup_p, dup_pc = _dup_counts(pparent, paras, para_len, n)
    cols["q_dup_para_frac"] = _ratio(dup_p, _seg_sum(pparent, n))
    cols["q_dup_para_char_frac"] = _ratio(dup_pc, n_chars)

    # -- n-gram repetition over clean words -----------------------------------------------------------
    cw = clean.filter(pa.array(nonsym))
    cw_ids = (
        cw.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.int64)
        if len(cw)
        else np.zeros(0, dtype=np.int64)
    )
    cols.update(_ngram_signals(cw_ids, clean_len[nonsym], wparent[nonsym], n, n_chars))

    # -- C4 document-level flags ----------------------------------------------------------------------
    cols["q_lorem_ipsum"] = (
        pc.count_substring(lower, "lorem ipsum").to_numpy(zero_copy_only=False) > 0
    ).astype(np.float64)
    cols["q_curly_brackets"] = pc.count_substring(arr, "{").to_numpy(zero_copy_only=False).astype(np.float64)
    if n_tokens is None:
        cols["q_chars_per_token"] = np.full(n, np.nan)
    else:
        cols["q_chars_per_token"] = _ratio(n_chars, np.asarray(n_tokens, dtype=np.float64))
    return pd.DataFrame({c: np.asarray(cols[c], dtype=np.float64) for c in SIGNAL_COLUMNS})


# ----------------------------------------------------------------------------------------------------
# the per-document reference (specification for tests; slow)
# ----------------------------------------------------------------------------------------------------
def _r(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _dups(items: list[str]) -> tuple[int, int]:
    seen: set[str] = set()
    n_dup = dup_chars = 0
    for it in items:
        if it in seen:
            n_dup += 1
            dup_chars += len(it)
        else:
            seen.add(it)
    return n_dup, dup_chars


def reference_signals(text: str) -> dict[str, float]:
    """The signals of one text computed with plain Python (the specification of :func:`compute_signals`)."""
    s: dict[str, float] = {}
    n_chars = len(text)
    s["q_n_chars"] = n_chars
    words = text.split()
    nw = len(words)
    s["q_n_words"] = nw
    clean_all = [w.strip(PUNCTUATION).lower() for w in words]
    clean = [w for w in clean_all if w]
    s["q_mean_word_len"] = _r(sum(len(w) for w in clean), len(clean))
    s["q_hash_ratio"] = _r(text.count("#"), nw)
    s["q_ellipsis_ratio"] = _r(text.count("...") + text.count("…"), nw)
    s["q_alpha_word_frac"] = _r(sum(any(c.isalpha() for c in w) for w in words), nw)
    s["q_stopwords"] = len(set(clean) & set(GOPHER_STOP_WORDS))
    s["q_stopword_frac"] = _r(sum(w in FUNCTION_WORDS for w in clean), len(clean))
    s["q_junk_word_frac"] = _r(sum(bool(_JUNK_WORD_PY.search(w)) for w in words), nw)
    alpha_words = [w for w in clean if len(w) >= 3 and w.isalpha()]
    s["q_no_vowel_word_frac"] = _r(sum(not (set(w) & _VOWELS) for w in alpha_words), len(alpha_words))
    letters = sum(c.isalpha() for c in text)
    spaces = sum(c.isspace() for c in text)  # Unicode white space, as str.isspace
    s["q_digit_frac"] = _r(sum(c in string.digits for c in text), n_chars)
    s["q_upper_frac"] = _r(sum(c.isupper() for c in text), letters)
    s["q_non_alpha_frac"] = _r(n_chars - spaces - letters, n_chars - spaces)
    lines = [ln.strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    nl = len(lines)
    s["q_n_lines"] = nl
    s["q_bullet_line_frac"] = _r(sum(ln.startswith(BULLETS) for ln in lines), nl)
    s["q_ellipsis_line_frac"] = _r(sum(ln.endswith(ELLIPSES) for ln in lines), nl)
    s["q_line_punct_frac"] = _r(sum(ln.endswith(TERMINAL_PUNCTUATION) for ln in lines), nl)
    s["q_short_line_frac"] = _r(sum(len(ln) <= SHORT_LINE_CHARS for ln in lines), nl)
    s["q_newline_word_ratio"] = _r(text.count("\n"), nw)
    d, dc = _dups(lines)
    s["q_dup_line_frac"] = _r(d, nl)
    s["q_dup_line_char_frac"] = _r(dc, n_chars)
    paras = [p for p in re.split(r"\n[ \t\r]*\n\s*", text.strip()) if p]
    d, dc = _dups(paras)
    s["q_dup_para_frac"] = _r(d, len(paras))
    s["q_dup_para_char_frac"] = _r(dc, n_chars)
    total = sum(len(w) for w in clean)
    for n in TOP_NGRAMS:
        grams = Counter(tuple(clean[i : i + n]) for i in range(len(clean) - n + 1))
        best = max(
            (c * (sum(len(w) for w in g) + n - 1) for g, c in grams.items() if c > 1),
            default=0,
        )
        s[f"q_top_{n}gram_frac"] = _r(best, n_chars)
    for n in DUP_NGRAMS:
        seen: set[tuple[str, ...]] = set()
        covered = [False] * len(clean)
        for i in range(len(clean) - n + 1):
            g = tuple(clean[i : i + n])
            if g in seen:
                for j in range(i, i + n):
                    covered[j] = True
            else:
                seen.add(g)
        s[f"q_dup_{n}gram_frac"] = _r(sum(len(w) for w, c in zip(clean, covered, strict=True) if c), total)
    s["q_boilerplate_line_frac"] = _r(sum(bool(_BOILER_PY.search(ln.lower())) for ln in lines), nl)
    s["q_nav_line_frac"] = _r(
        sum(len(_NAV_SEP_PY.findall(ln)) >= 2 and not ln.endswith(TERMINAL_PUNCTUATION) for ln in lines), nl
    )
    s["q_lorem_ipsum"] = float("lorem ipsum" in text.lower())
    s["q_curly_brackets"] = text.count("{")
    s["q_chars_per_token"] = float("nan")
    return {c: float(s[c]) for c in SIGNAL_COLUMNS}

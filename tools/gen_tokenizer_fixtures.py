#!/usr/bin/env python3
"""Generate tests/fixtures/tokenizer/cases.json: reference Gemma 3 token ids from Hugging Face `tokenizers`.

Usage (needs the `tokenizers` package and xz; CI never runs this, it only reads the committed output):
    python3 tools/gen_tokenizer_fixtures.py [--tokenizer-json PATH]

The reference is the HF fast tokenizer built from ../shared/data/gemma3-tokenizer/tokenizer.json.xz
(gemma3-spec.md §5). For every case we record `ids` = encode(text, add_special_tokens=False). The HF
post-processor only prepends <bos> (id 2) when add_special_tokens=True; the script asserts that for
every case, so the C++ test checks encode(text, add_bos=true) == [2] + ids.

Besides the cases, the fixture describes one long text (the case texts joined by "\n", repeated until
it is at least 100,000 bytes; cases containing <image_soft_token> are left out because that token,
id 262144, exists only in HF's vocabulary and not in 262,144-piece GGUF vocabularies, spec §7.4) by its length, id count and an FNV-1a 64 hash of the ids (little-endian
int32), so the test can check a ~100 KB encode exactly without committing ~25k ids.
"""
import argparse
import json
import lzma
import os
import random
import sys
import tempfile

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_XZ = os.path.join(ROOT, "..", "shared", "data", "gemma3-tokenizer", "tokenizer.json.xz")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "cases.json")
LONG_TEXT_MIN_BYTES = 100_000
IMAGE_SOFT_TOKEN = "<image_soft_token>"


def handwritten():
    code_py = (
        "def fib(n):\n"
        "    if n < 2:\n"
        "        return n\n"
        "    return fib(n - 1) + fib(n - 2)\n"
    )
    code_cpp = (
        "#include <vector>\n\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n"
        "\tfor (auto& x : v) {\n\t\tx *= 2;\n\t}\n\treturn 0;\n}\n"
    )
    code_json = '{\n  "name": "unicorn",\n  "layers": [1, 2, 3],\n  "nested": {\n    "ok": true\n  }\n}'
    return [
        "",
        "Hello world, this is Gemma 3!",
        "Hello",
        " Hello",
        "  Hello",
        "Hello ",
        "a",
        " ",
        "The quick brown fox jumps over the lazy dog.",
        "I'm sure you'll see—it's \"quoted\" and 'single' and `code`.",
        code_py,
        code_cpp,
        code_json,
        "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
        "x = [i**2 for i in range(10) if i % 2 == 0]",
        "0",
        "1234567890",
        "3.14159265358979",
        "2024-01-01T12:34:56Z",
        "1,000,000 and 12.5% of $99.99",
        "Room 101, floor 7, call +1 (555) 123-4567",
        "١٢٣٤٥ ٠٩",
        "<start_of_turn>user\nhi<end_of_turn>",
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n",
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
        "<bos>",
        "<eos>",
        "<pad><unk><mask>",
        "[multimodal]",
        "<unused0> <unused99> <unused6241>",
        "<start_of_image><image_soft_token><end_of_image>",
        "<start_of_turn",
        "start_of_turn>",
        "<<start_of_turn>>",
        "<0x41> <0xE4>",
        "▁",
        "▁▁",
        "a▁▁▁b",
        "<table><tr><td>1</td><td>2</td></tr></table>",
        "<h1>Title</h1>\n<p>Paragraph with <b>bold</b> and <i>italic</i>.</p>",
        '<div class="x">\n  <span>text</span>\n</div>',
        "<br/><hr><img src=\"a.png\" alt=\"\">",
        "Emoji: 😀😃😄😁 👍🏽 👨‍👩‍👧‍👦 🇺🇸🇯🇵 ❤️ 🫠",
        "🦄",
        "中文分词测试：我爱自然语言处理。",
        "日本語のテキスト、ひらがなとカタカナ。漢字も。",
        "한국어 문장입니다. 안녕하세요!",
        "العربية: مرحبا بالعالم، كيف حالك؟",
        "עברית: שלום עולם",
        "हिन्दी: नमस्ते दुनिया",
        "ไทย: สวัสดีชาวโลก",
        "Русский текст: Привет, мир!",
        "Ελληνικά: Γειά σου Κόσμε",
        "Mixed: Hello 世界 مرحبا мир 🌍!",
        "∑_{i=1}^{n} i² = n(n+1)/2 ≈ ∞ ≠ √2 ∫ ∂",
        "e\u0301 vs é, n\u0303 vs ñ, Zalgo: Z\u0351\u0364\u0300a\u0352l\u0307g\u0309o",
        "zero\u200bwidth\u200cjoiner\u200d",
        "nbsp:\u00a0here\u2003em\u3000ideo",
        "\u0000\u0001\u0007\u001b[0m",
        "\r\n\r\n",
        "line1\rline2",
        "\x7f\u0080\u009f",
        "\U0010ffff\U000e0001\ue000",
        "tab\tseparated\tvalues\n1\t2\t3",
        "trailing spaces   \n  leading",
        "https://example.com/path?query=1&b=2#frag",
        "user@example.com",
        "C:\\Users\\name\\file.txt",
        "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "ababababababababababababababab",
        "!!!???...,,,;;;:::",
        "----------======----------",
        "************************************************",
        "'''\"\"\"```~~~",
    ]


def whitespace_runs():
    out = []
    for n in range(1, 41):
        out.append(" " * n)
        out.append("\t" * n)
        out.append("\n" * n)
        out.append("x" + " " * n + "y")
        if n <= 12:
            out.append("a\n" + " " * n + "b")
            out.append("\t" * n + "code")
            out.append(" " * n + "\n" * n)
    out += [" \t \n", "\n \n \n", "\t \t", " \n\t\r\n "]
    return out


POOLS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "     \t\n",
    ".,;:!?'\"()[]{}<>/\\|@#$%^&*-_=+~`",
    "äöüßéèêçñøåæœ",
    "中文字符测试我爱你好世界",
    "ひらがなカタカナ",
    "한국어문장",
    "مرحبابالعالم",
    "Приветмир",
    "😀👍🏽🦄🌍❤️🇺🇸",
    "▁",
]

TAGS = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<table>", "<td>", "</td>", "<h1>", "\n\n"]


def random_pool_text(rng, max_len):
    pools = rng.sample(POOLS, rng.randint(1, 4))
    chars = "".join(pools)
    text = "".join(rng.choice(chars) for _ in range(rng.randint(1, max_len)))
    if rng.random() < 0.2:
        k = rng.randrange(len(text) + 1)
        text = text[:k] + rng.choice(TAGS) + text[k:]
    return text


def random_codepoints(rng, max_len):
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x52F), (0x600, 0x6FF), (0x900, 0x97F),
              (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF),
              (0x10000, 0x10FFFF), (0xE000, 0xF8FF), (0x80, 0x9F), (0x0, 0x1F)]
    out = []
    for _ in range(rng.randint(1, max_len)):
        lo, hi = rng.choice(ranges)
        cp = rng.randint(lo, hi)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0x41
        out.append(chr(cp))
    return "".join(out)


def random_words(rng, words, max_words):
    sep = [" ", " ", " ", "  ", "\n", ", ", ". ", "\t"]
    return "".join(rng.choice(words) + rng.choice(sep) for _ in range(rng.randint(1, max_words))).rstrip(" ")


def build_cases():
    rng = random.Random(1234)
    cases = handwritten() + whitespace_runs()
    words = " ".join(handwritten()[1:40]).split()
    for _ in range(120):
        cases.append(random_pool_text(rng, 60))
    for _ in range(80):
        cases.append(random_codepoints(rng, 24))
    for _ in range(80):
        cases.append(random_words(rng, words, 20))
    seen, unique = set(), []
    for c in cases:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


def fnv1a64_ids(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-json", help="decompressed tokenizer.json (default: decompress the shared .xz)")
    args = ap.parse_args()
    path = args.tokenizer_json
    if path is None:
        tmp = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
        with lzma.open(DEFAULT_XZ) as src:
            tmp.write(src.read())
        tmp.close()
        path = tmp.name
    tok = Tokenizer.from_file(path)

    cases = build_cases()
    out_cases = []
    for text in cases:
        ids = tok.encode(text, add_special_tokens=False).ids
        with_bos = tok.encode(text, add_special_tokens=True).ids
        assert with_bos == [2] + ids, (text, with_bos, ids)
        out_cases.append({"text": text, "ids": ids})

    long_text = "\n".join(c for c in cases if IMAGE_SOFT_TOKEN not in c)
    repeated = long_text
    while len(repeated.encode("utf-8")) < LONG_TEXT_MIN_BYTES:
        repeated += "\n" + long_text
    long_ids = tok.encode(repeated, add_special_tokens=False).ids
    fixture = {
        "source": "HF tokenizers %s on shared/data/gemma3-tokenizer/tokenizer.json.xz; "
                  "ids = encode(text, add_special_tokens=False); with BOS = [2] + ids" % __import__("tokenizers").__version__,
        "cases": out_cases,
        "long_text": {
            "recipe": "case texts without <image_soft_token> joined by \\n, then repeated (joined by \\n) "
                      "until >= min_bytes",
            "min_bytes": LONG_TEXT_MIN_BYTES,
            "bytes": len(repeated.encode("utf-8")),
            "id_count": len(long_ids),
            "ids_fnv1a64": "%016x" % fnv1a64_ids(long_ids),
        },
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"{len(out_cases)} cases, long text {fixture['long_text']['bytes']} bytes / {len(long_ids)} ids, "
          f"{os.path.getsize(OUT)} bytes -> {OUT}")


if __name__ == "__main__":
    sys.exit(main())

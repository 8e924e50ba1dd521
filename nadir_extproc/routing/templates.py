"""Hand-written template prompts: generic trivially-easy requests (label 0) and generic short hard
requests (label 1) — the ``templates`` training source (issue 15, third round; v2.3 adds sums
written with operators, short "why does this algorithm cost that" questions and series to sum;
v2.5 conversions asked the short way, with unit abbreviations).

Why: no labelled source shows the router a one-line arithmetic question, a word to translate, a
greeting, a unit conversion or a tiny creative ask (all answerable by any model), nor a short
proof, complexity question, buggy snippet or performance question (where the strong model's lead
is largest on chat benchmarks). These rows are *weak labels by construction*, like
``data.category_rows``: what kind of request it is, not a measured answer.

Provenance and licence: written for this repository by its authors (templates and word lists in
this file; no text copied from any data set or web page), same licence as the repository. The
rows are generated deterministically from the lists below (``template_rows``).

Rule: none of these rows copies or paraphrases a prompt of the demo (``nadir_extproc/demo.py``,
``tests/routing/test_router.py``) or of the hand-labelled chat sets (``docs/router-eval/
chat_prompts.jsonl``, ``kinds_val.jsonl``, ``kinds_test.jsonl``); ``tests/routing/test_templates.py`` checks that no row is within a small
edit distance of, or shares a 4-word run with, any of those prompts. Topics the demo uses (for
example specific sums, the square root of 2, quicksort, cycle detection, SQL joins, shell loops,
miles, Spanish / Japanese greetings, haiku and limericks) are left out on purpose.
"""

from __future__ import annotations

import itertools
import random

SOURCE = "templates"

# --- easy (label 0) ---------------------------------------------------------------------------

_ARITH = (
    "Quick one: {a} minus {b}?", "Can you multiply {a} by {b} for me?", "{a} times {b} equals what?",
    "Add {a} and {b}, please.", "Divide {c} by {b}.", "How much is {a} take away {b}?",
    "Half of {c}, please.", "Double {a}.", "Subtract {b} from {c}.",
)
#: The same trivial sums written with operators, as people type them into a chat box. Without these
#: the operator bytes (``features`` symbol share) of a one-line sum read like code or a math exam.
_ARITH_SYM = (
    "{a}+{b}?", "{a} - {b} = ?", "{a}*{b}", "calc {c}/{b}", "Compute {a} x {b}.", "How much is {a} - {b}?",
    "quick math: {a} + {b}", "whats {a}*{b}", "{c} / {b} =", "Calculate {a}+{b} please", "Can you do {a} * {b}?",
    "{b}% of {h}?", "Tell me {a} plus {b}.", "is {a} + {b} equal to {s}?", "Answer only: {a} - {b}",
    "{b} squared?", "square root of {q}", "{c} divided by {b}", "what's {a} times {b}", "{a} + {b} + {b}",
    "Is {a} an even number?", "Round {a}.{b} to the nearest whole number.", "{a} minus {b} plus 1",
)
_TRANSL_WORDS = ("cat", "thank you", "water", "bread", "goodbye", "friend", "book", "please", "house", "tree",
                 "rain", "coffee", "yes", "no", "sorry")
_LANGS = ("French", "German", "Italian", "Portuguese", "Dutch", "Swedish", "Korean", "Polish", "Turkish", "Greek")
_TRANSL = ("What's the {lang} word for '{w}'?", "'{w}' in {lang}?", "How would a {lang} speaker write '{w}'?",
           "Give me '{w}' in {lang}.")
_GREET = ("Hey!", "Yo, what's up?", "Good evening :)", "Hiya, how's it going?", "Howdy!", "Morning!",
          "Hello, nice to meet you.", "Thanks a lot, bye!", "Cheers, that's all for now.", "Bye for now!",
          "Hey there, are you awake?", "Good night!", "Sup?", "Greetings, assistant.", "Ok thanks, bye.")
_CONV = ("How many grams are in {n} pounds?", "{n} degrees Celsius in Fahrenheit?", "Turn {n} inches into centimetres.",
         "How many millilitres is {n} cups?", "{n} hours is how many minutes?", "Express {n} feet in metres.",
         "What is {n} kilograms in pounds?", "How many seconds in {n} minutes?", "{n} litres to gallons?")
#: Unit pairs for conversions asked the short way, often with abbreviations ("how many mm in a m"):
#: without these, metric abbreviations read like a physics or code question (issue 15, fresh-user pass).
_UNITS = (("mm", "cm"), ("cm", "m"), ("m", "km"), ("ml", "l"), ("mg", "g"), ("g", "kg"), ("oz", "lb"),
          ("in", "ft"), ("ft", "yd"), ("cl", "dl"), ("millimetres", "centimetre"), ("centimeters", "decimeter"),
          ("metres", "kilometre"), ("grams", "kilo"), ("seconds", "day"), ("minutes", "week"), ("days", "year"),
          ("bytes", "kilobyte"), ("pints", "gallon"), ("teaspoons", "tablespoon"))
_CONV_SHORT = ("how many {a} in a {b}", "How many {a} are there in one {b}?", "{a} per {b}?",
               "1 {b} = how many {a}?", "number of {a} in a {b} pls")
_SMALL = ("a sleepy cat", "rainy Mondays", "fresh coffee", "the ocean", "a paper boat", "my houseplant",
          "a lost sock", "the moon", "a bicycle ride", "pancakes", "snow days", "a lighthouse")
_CREATIVE = ("Write a two-line rhyme about {t}.", "Give me a short, cute caption for a photo of {t}.",
             "A four-word slogan about {t}, please.", "Make up a silly title for a song about {t}.",
             "One sentence of poetry about {t}.", "Suggest a pun about {t}.")
_TRIVIA = ("Which ocean is the largest?", "Which metal is liquid at room temperature?", "Which animal has a trunk?",
           "What's the main ingredient of guacamole?", "Who painted the Mona Lisa?",
           "What's the opposite of 'generous'?", "Spell 'necessary' for me.", "Is a whale a mammal?",
           "Which is bigger, a kilometre or a mile?", "What's the plural of 'mouse'?", "Name a vegetable that is green.",
           "How many minutes are in an hour?", "What day comes after Thursday?", "Give me a word that rhymes with 'cake'.",
           "How many sides does a hexagon have?", "What does 'CPU' stand for?", "Name three farm animals.",
           "Recommend a board game for two people.", "Suggest a name for a pet hamster.", "Pick a random colour.")

# --- hard (label 1) ---------------------------------------------------------------------------

_PROOF_CLAIMS = (
    "the product of two odd integers is odd", "there is no largest prime number",
    "every tree with k vertices has exactly k - 1 edges", "there are infinitely many primes of the form 4k + 3",
    "a graph is bipartite if and only if it has no odd cycle", "n^3 - n is divisible by 6 for every integer n",
    "the harmonic series diverges", "every finite integral domain is a field",
    "the set of real numbers is uncountable", "the logarithm of 5 to base 2 cannot be a ratio of integers",
    "the interior angles of a triangle add up to 180 degrees in Euclidean geometry",
    "any two bases of a finite-dimensional vector space have the same size",
    "a continuous function on a closed interval attains its maximum",
    "the number of subsets of a k-element set is 2^k", "2^k > k^2 for every integer k >= 5",
)
_PROOF = ("Prove that {c}.", "Show rigorously that {c}.", "Give a careful proof that {c}.",
          "Can you prove {c}? Justify each step.")
_ALGOS = ("heapsort", "merge sort on a linked list", "Dijkstra's algorithm with a binary heap",
          "binary search on a rotated sorted array", "building a heap bottom-up", "the Floyd-Warshall algorithm",
          "union-find with path compression and union by rank", "insertion sort on nearly sorted input",
          "a hash table with open addressing at high load factor", "Kruskal's minimum spanning tree algorithm",
          "the KMP string matching algorithm", "breadth-first search on an adjacency matrix")
_COMPLEX = ("What is the running time of {a}? Justify the bound.", "Give a tight asymptotic bound for {a} and argue it.",
            "Explain the amortised cost of {a} with a potential argument.", "Compare best and average case of {a}, with reasoning.")
_BUGS = (
    ("python", "def last(xs):\n    return xs[len(xs)]"),
    ("python", "total = 0\nfor i in range(1, 10):\n    total =+ i\nprint(total)"),
    ("python", "def add(item, bucket=[]):\n    bucket.append(item)\n    return bucket"),
    ("javascript", "for (var i = 0; i < 3; i++) {\n  setTimeout(() => console.log(i), 0);\n}"),
    ("javascript", "const data = fetch(url).json();\nconsole.log(data.items.length);"),
    ("c", "char *copy(const char *s) {\n  char buf[64];\n  strcpy(buf, s);\n  return buf;\n}"),
    ("go", "for _, v := range vals {\n  go func() { fmt.Println(v) }()\n}"),
    ("rust", "let v = vec![1, 2, 3];\nlet first = &v[0];\nv.push(4);\nprintln!(\"{}\", first);"),
    ("java", "if (name == \"admin\") {\n  grantAccess();\n}"),
    ("python", "import threading\ncount = 0\ndef work():\n    global count\n    for _ in range(100000): count += 1"),
    ("cpp", "std::vector<int> v{1,2,3};\nfor (auto it = v.begin(); it != v.end(); ++it)\n  if (*it == 2) v.erase(it);"),
    ("python", "with open(path) as f:\n    rows = f.readlines\nprint(len(rows))"),
)
#: Short conceptual questions about algorithms and data structures (why a bound holds, what breaks).
_ALGO_WHY = (
    "Why is comparison-based sorting bounded below by k log k comparisons?",
    "Why does a red-black tree stay balanced? Explain the invariant.",
    "Why can't Dijkstra's algorithm handle negative edge weights? Give an example.",
    "What makes the travelling salesman problem NP-hard?",
    "Explain how a skip list achieves logarithmic search in expectation.",
    "Argue why the greedy choice is optimal for interval scheduling.",
    "Derive the worst-case height of an AVL tree.",
    "Analyse the space used by recursive depth-first search on a path graph.",
    "What is the lower bound for selecting the median, and why?",
    "Explain why hashing gives expected constant lookups but a bad worst case.",
    "Why is bubble sort quadratic on reversed input? Count the swaps.",
    "Explain the recursion depth of merge sort and why it matters for stack space.",
    "Analyze binary search: why does it need sorted input, and how many probes can it take?",
    "Why is finding a Hamiltonian path harder than finding an Eulerian path?",
)
_SERIES = (
    "Derive a formula for 1 + 3 + 5 + ... up to the k-th odd number.",
    "Add up the geometric series a + ar + ar^2 + ... + ar^(k-1), with derivation.",
    "Show that 1^3 + 2^3 + ... + k^3 equals the square of a triangular number.",
    "Evaluate the telescoping sum of 1/(i(i+1)) for i from 1 to k and justify it.",
    "Work out the sum of an arithmetic progression with first term a and difference d, step by step.",
)
_DEBUG = ("What's wrong with this code?\n```{lang}\n{code}\n```", "Find the bug:\n```{lang}\n{code}\n```",
          "This behaves unexpectedly, why?\n```{lang}\n{code}\n```")
_PERF = (
    "My Python script parsing a 4 GB log file runs out of memory. How should I restructure it?",
    "A pandas groupby over 30 million rows takes minutes. How can I speed it up?",
    "Our REST API's p99 latency doubled after adding an ORM. How would you track down the cause?",
    "My Node service's memory grows steadily until it crashes after a day. How do I find the leak?",
    "Why would a Java service spend 40% of its CPU in garbage collection, and how can I reduce it?",
    "A nested loop comparing two lists of 100k strings is too slow. What data structure fixes it?",
    "My Redis cache hit rate is only 20%. How do I diagnose and improve it?",
    "My Docker image build takes 15 minutes on every commit. How can I make it fast?",
    "Our Kafka consumers lag further behind each hour. What would you check first?",
    "A React list of 10,000 items scrolls with heavy jank. How should it be rendered?",
    "Matrix multiplication in pure Python is 100x slower than NumPy. Explain why in detail.",
    "Our Spark job spends most of its time in a shuffle stage. How can the shuffle be reduced?",
)
_MATH = (
    "Compute the mean number of fair die rolls needed until all six faces have shown up, with derivation.",
    "Solve the recurrence T(k) = 2T(k/2) + k log k and explain the method.",
    "How many ways can 8 rooks be placed on a chessboard so that none attack each other? Derive it.",
    "Compute the integral of x^2 e^x dx and show each step.",
    "Find the eigenvalues of the matrix [[2, 1], [1, 2]] and explain what they mean geometrically.",
    "What is the probability that two random integers are coprime? Sketch the argument.",
    "Show how to compute Fibonacci numbers in O(log k) time and prove the identity it relies on.",
    "Determine whether the series sum of 1/(k log k) converges, with proof.",
    "Derive the variance of a binomial random variable from first principles.",
    "Use generating functions to count binary strings of length k with no two adjacent ones.",
)


def _easy(rnd: random.Random) -> list[str]:
    out = []
    for t in _ARITH:
        for _ in range(4):
            a, b = rnd.randint(11, 99), rnd.randint(2, 12)
            out.append(t.format(a=a, b=b, c=a * b))
    for t in _ARITH_SYM:
        for _ in range(3):
            a, b = rnd.randint(2, 99), rnd.randint(2, 30)
            out.append(t.format(a=a, b=b, c=a * b, h=rnd.choice((40, 50, 60, 80, 120, 200, 250, 300)), s=a + b,
                                   q=rnd.randint(2, 15) ** 2))
    for t, lang in itertools.product(_TRANSL, _LANGS):
        out.append(t.format(lang=lang, w=rnd.choice(_TRANSL_WORDS)))
    out.extend(_GREET)
    for t in _CONV:
        for n in rnd.sample(range(2, 60), 3):
            out.append(t.format(n=n))
    for a, b in _UNITS:
        out.extend(t.format(a=a, b=b) for t in rnd.sample(_CONV_SHORT, 2))
    for t in _CREATIVE:
        for topic in rnd.sample(_SMALL, 4):
            out.append(t.format(t=topic))
    out.extend(_TRIVIA)
    return out


def _hard(rnd: random.Random) -> list[str]:
    out = []
    for c in _PROOF_CLAIMS:
        out.extend(t.format(c=c) for t in rnd.sample(_PROOF, 2))
    for a in _ALGOS:
        out.extend(t.format(a=a) for t in rnd.sample(_COMPLEX, 4))
    for lang, code in _BUGS:
        out.extend(t.format(lang=lang, code=code) for t in rnd.sample(_DEBUG, 2))
    out.extend(_PERF)
    out.extend(_MATH)
    out.extend(_ALGO_WHY)
    out.extend(_SERIES)
    return out


def template_rows(seed: int = 15) -> list[tuple[str, int, str]]:
    """``(prompt, label, kind)`` rows, deterministic for ``seed``, duplicates removed: easy requests
    (kind ``template-easy``, label 0) then hard ones (kind ``template-hard``, label 1)."""
    rnd = random.Random(seed)
    seen: set[str] = set()
    rows = []
    for label, kind, prompts in ((0, "template-easy", _easy(rnd)), (1, "template-hard", _hard(rnd))):
        for p in prompts:
            if p not in seen:
                seen.add(p)
                rows.append((p, label, kind))
    return rows

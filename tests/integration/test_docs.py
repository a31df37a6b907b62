"""test_docs.py - the man pages and the example configuration against the
binary's own --help

Run:  SEATCAST_BIN=$PWD/build/seatcast /usr/bin/python3 -m pytest -v \\
          -p no:cacheprovider tests/integration/test_docs.py

    - `mandoc -T lint -W warning` prints nothing on man/seatcast.8 and
      man/seatcast.conf.5;
    - the long options of `seatcast --help` (and of `seatcast token
      --help`, `seatcast stats --help`) are exactly those of seatcast(8),
      each main option has an entry with its default in OPTIONS;
    - every option of --help but config/version/help is a key of
      seatcast.conf(5) and a commented line of etc/seatcast.conf, and
      nothing else is; literal defaults agree between --help, the man
      page and the example file;
    - the example file, every line uncommented, passes `seatcast -t`.
"""

import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import ROOT, run_seatcast  # noqa: E402

MAN8 = os.path.join(ROOT, "man", "seatcast.8")
MAN5 = os.path.join(ROOT, "man", "seatcast.conf.5")
CONF = os.path.join(ROOT, "etc", "seatcast.conf")
LONG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
CLI_ONLY = {"config", "version", "help"}

pytestmark = pytest.mark.deadline(30)


def render(page):
    """The page as plain text (mandoc -T ascii, overstrike removed)."""
    res = subprocess.run(["mandoc", "-T", "ascii", page],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=20)
    assert res.returncode == 0, res.stderr.decode()
    return re.sub(r".\x08", "", res.stdout.decode())


def section(text, name):
    """One top-level section of a rendered page, up to the next one."""
    m = re.search(r"^%s\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)" % re.escape(name),
                  text, re.M | re.S)
    assert m, "no section %s" % name
    return m.group(1)


def main_help():
    p = run_seatcast(["--help"])
    assert p.returncode == 0, p.stderr
    return p.stdout


def sub_help(cmd):
    p = run_seatcast([cmd, "--help"])
    return p.stdout + p.stderr


def help_options(text):
    """{long name: default text or None} of the option table of --help."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]*)(?:=\S+)?\s+(.*)$",
                     line)
        if m:
            d = re.search(r"\[([^\]]*)\]\s*$", m.group(2))
            out[m.group(1)] = d.group(1) if d else None
    return out


def literal(default):
    """A default that is one literal value (not 'none', 'any', prose)."""
    if default is None or default in ("none", "any", "not checked"):
        return None
    if re.fullmatch(r"\d+[kKmM]?", default):
        return default
    if re.fullmatch(r"[a-z0-9.:/_-]+", default) and \
            not re.search(r"[A-Z$ ]", default):
        return default
    return None


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=os.path.basename)
def test_mandoc_lint_is_clean(page):
    res = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", page],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=20)
    assert res.returncode == 0 and res.stdout == b"", res.stdout.decode()


def test_help_long_options_match_seatcast_8():
    helps = main_help() + sub_help("token") + sub_help("stats")
    in_help = set(LONG.findall(helps))
    in_man = set(LONG.findall(render(MAN8)))
    assert in_help - in_man == set(), \
        "in --help but not in seatcast(8): %s" % sorted(in_help - in_man)
    assert in_man - in_help == set(), \
        "in seatcast(8) but not in --help: %s" % sorted(in_man - in_help)


def test_every_main_option_has_an_entry_with_default():
    opts = help_options(main_help())
    assert len(opts) >= 28, opts
    text = section(render(MAN8), "OPTIONS")
    # entries start at the left margin of the list: "     --name=arg" or
    # "     -x arg, --name=arg"
    starts = [(m.start(), m.group(1)) for m in re.finditer(
        r"^     (?:-\w(?: \w+)?, )?--([a-z][a-z0-9-]*)", text, re.M)]
    entries = {}
    for i, (pos, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        entries[name] = text[pos:end]
    for name, default in opts.items():
        assert name in entries, "seatcast(8) OPTIONS has no entry --%s" % name
        if name in CLI_ONLY - {"config"}:
            continue
        body = " ".join(entries[name].split())
        assert "Default:" in body, "--%s: no default in seatcast(8)" % name
        lit = literal(default)
        if lit is not None:
            assert re.search(r"Default: %s\b" % re.escape(lit), body), \
                "--%s: --help says [%s], seatcast(8) says: %s" % (
                    name, default, body[body.index("Default:"):][:60])
    for short in re.findall(r"^\s+(-\w)[, ]", main_help(), re.M):
        assert re.search(r"(?<![\w-])%s\b" % short, text), \
            "short option %s missing from seatcast(8) OPTIONS" % short


def test_token_and_stats_options_documented_in_their_entries():
    text = section(render(MAN8), "SUBCOMMANDS")
    tok = text[text.index("token --sub"):]
    stats = text[text.index("stats [--json]"):text.index("token --sub")]
    for name in set(LONG.findall(sub_help("token"))) - {"help"}:
        assert "--%s" % name in tok, "token --%s not in seatcast(8)" % name
    assert re.search(r"--ttl=seconds\s.*?Default: 3600", tok, re.S), tok
    for name in set(LONG.findall(sub_help("stats"))) - {"help"}:
        assert "--%s" % name in stats, "stats --%s not in seatcast(8)" % name


def test_subcommand_help_exits_0():
    """`--help` is a request, not an error: seatcast(8) EXIT STATUS says
    0 when --help is done, as the main command does."""
    for cmd in ("token", "stats"):
        p = run_seatcast([cmd, "--help"])
        assert p.returncode == 0 and "usage: seatcast %s" % cmd in p.stdout, \
            "`seatcast %s --help`: exit %d, stdout %r, stderr %r" % (
                cmd, p.returncode, p.stdout, p.stderr)


def conf_keys():
    """{key: value} of the commented option lines of etc/seatcast.conf."""
    out = {}
    with open(CONF) as f:
        for line in f:
            m = re.match(r"^#([a-z][a-z0-9-]*) =(?: (.*))?$", line.rstrip())
            if m:
                out[m.group(1)] = (m.group(2) or "").strip()
    return out


def man5_keys():
    with open(MAN5) as f:
        return set(re.findall(r"^\.It Cm ([a-z][a-z0-9-]*) No =", f.read(),
                              re.M))


def test_config_file_and_seatcast_conf_5_have_every_option():
    opts = set(help_options(main_help())) - CLI_ONLY
    conf = set(conf_keys())
    man5 = man5_keys()
    assert opts - conf == set(), \
        "not in etc/seatcast.conf: %s" % sorted(opts - conf)
    assert conf - opts == set(), \
        "etc/seatcast.conf has unknown keys: %s" % sorted(conf - opts)
    assert opts - man5 == set(), \
        "not in seatcast.conf(5) KEYS: %s" % sorted(opts - man5)
    assert man5 - opts == set(), \
        "seatcast.conf(5) documents unknown keys: %s" % sorted(man5 - opts)


def test_config_file_defaults_agree_with_help():
    opts = help_options(main_help())
    conf = conf_keys()
    for name, default in opts.items():
        lit = literal(default)
        if lit is not None and name in conf:
            assert conf[name] == lit, \
                "%s: --help says [%s], etc/seatcast.conf says %r" % (
                    name, default, conf[name])
    with open(MAN5) as f:
        man5 = " ".join(f.read().split())
    for name, default in opts.items():
        lit = literal(default)
        if lit is None or name in CLI_ONLY:
            continue
        m = re.search(r"\.It Cm %s No = (.*?)(?=\.It Cm |\.El)" %
                      re.escape(name), man5)
        assert m and "Default: %s." % lit in m.group(1), \
            "%s: seatcast.conf(5) lacks 'Default: %s.'" % (name, lit)


def test_example_config_uncommented_passes_check(tmp_path):
    """Every example line of etc/seatcast.conf is valid as written."""
    out = []
    with open(CONF) as f:
        for line in f:
            m = re.match(r"^#([a-z][a-z0-9-]*) =", line)
            out.append(line[1:] if m else line)
    path = tmp_path / "all.conf"
    path.write_text("".join(out))
    p = run_seatcast(["-t", "-c", str(path)])
    assert p.returncode == 0 and "configuration ok" in p.stdout + p.stderr, \
        (p.returncode, p.stdout, p.stderr)
    # and as shipped, all commented out: the defaults
    p = run_seatcast(["-t", "-c", CONF])
    assert p.returncode == 0, (p.stdout, p.stderr)

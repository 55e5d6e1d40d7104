#!/usr/bin/env python3
"""Checks deploy/unraid/pps.xml, the Unraid Community Applications template.

Usage: check.py TEMPLATE REPO_ROOT. Prints one line per problem and exits 1 when there
is any; prints a summary and exits 0 otherwise.

- well-formed XML, a <Container version="2"> root;
- every element Unraid and CA need, non-empty: Name, Repository, Overview (English and
  Chinese), WebUI ([IP]:[PORT:8090]), Icon, Category, TemplateURL, Support, Project;
- the config and store paths under /mnt/user/appdata/pps, the port, PUID/PGID/TZ/UMASK;
- every secret masked; every Config well-formed (Type, Target, Mode for ports/paths);
- every variable it sets is one pps reads: a name in the Rust sources (PUID, PPS_...),
  or PPS_SOURCES_<NAME>_<KEY> / PPS_TARGETS_<NAME>_<KEY> whose KEY is a field of a
  source's or target's config struct.
"""
import pathlib
import re
import sys
import xml.etree.ElementTree as ET


def rust_sources(root):
    for crate in ("pps", "pps-cli", "pps-core", "pps-clouddrive", "pps-mediaserver"):
        for p in (root / crate / "src").rglob("*.rs"):
            yield p.read_text(encoding="utf-8")


def main():
    template, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    problems = []
    try:
        tree = ET.parse(template)
    except ET.ParseError as e:
        print(f"not well-formed: {e}")
        return 1
    c = tree.getroot()
    if c.tag != "Container" or c.get("version") != "2":
        problems.append(f"root is <{c.tag} version={c.get('version')}>, not <Container version=\"2\">")

    def text(tag):
        e = c.find(tag)
        return (e.text or "").strip() if e is not None else None

    for tag in ("Name", "Repository", "Overview", "WebUI", "Icon", "Category",
                "TemplateURL", "Support", "Project", "Network"):
        if not text(tag):
            problems.append(f"<{tag}> is missing or empty")
    overview = text("Overview") or ""
    if not re.search(r"[A-Za-z]{3,} [A-Za-z]{3,}", overview):
        problems.append("<Overview> has no English")
    if not re.search(r"[\u4e00-\u9fff]", overview):
        problems.append("<Overview> has no Chinese")
    if text("WebUI") != "http://[IP]:[PORT:8090]/":
        problems.append(f"<WebUI> is {text('WebUI')!r}, not http://[IP]:[PORT:8090]/")
    if not re.fullmatch(r"https://\S+\.png", text("Icon") or ""):
        problems.append("<Icon> is not an https:// .png address")
    if not (root / "docs/icon.png").is_file():
        problems.append("docs/icon.png (the icon's file) is missing")
    if text("Privileged") != "false":
        problems.append("<Privileged> must be false: pps needs no privileges")

    configs = c.findall("Config")
    by_target = {}
    for cfg in configs:
        t = cfg.get("Target")
        kind = cfg.get("Type")
        for attr in ("Name", "Target", "Default", "Mode", "Description", "Type",
                     "Display", "Required", "Mask"):
            if cfg.get(attr) is None:
                problems.append(f"Config {t or cfg.get('Name')!r} lacks the attribute {attr}")
        if kind not in ("Port", "Path", "Variable", "Label", "Device"):
            problems.append(f"Config {t!r}: Type {kind!r} is not one Unraid knows")
        if cfg.get("Required") not in ("true", "false") or cfg.get("Mask") not in ("true", "false"):
            problems.append(f"Config {t!r}: Required and Mask are true or false")
        if t in by_target:
            problems.append(f"Config {t!r} appears twice")
        by_target[t] = cfg

    def value(t):
        cfg = by_target.get(t)
        return None if cfg is None else (cfg.text or cfg.get("Default") or "").strip()

    port = by_target.get("8090")
    if port is None or port.get("Type") != "Port" or port.get("Mode") != "tcp" or value("8090") != "8090":
        problems.append("no tcp Port 8090 (the web UI)")
    for target, host in (("/config", "/mnt/user/appdata/pps/config"), ("/data", "/mnt/user/appdata/pps/data")):
        cfg = by_target.get(target)
        if cfg is None or cfg.get("Type") != "Path" or value(target) != host or cfg.get("Mode") != "rw":
            problems.append(f"no rw Path {target} at {host}")
    for var, want in (("PUID", "99"), ("PGID", "100"), ("UMASK", None), ("TZ", None)):
        cfg = by_target.get(var)
        if cfg is None or cfg.get("Type") != "Variable":
            problems.append(f"no Variable {var}")
        elif want is not None and value(var) != want:
            problems.append(f"{var} is {value(var)!r}, not Unraid's {want}")

    # What pps reads. Fixed names: string literals in the Rust sources. Per source or
    # target: the config structs' field names (serde keys).
    code = "\n".join(rust_sources(root))
    literals = set(re.findall(r'"((?:PPS_[A-Z0-9_]+)|PUID|PGID|UMASK|TZ)"', code))
    # Struct fields (public or not: serde reads private ones too), one per line.
    fields = set(re.findall(r"^\s*(?:pub(?:\([a-z]+\))? )?([a-z_][a-z0-9_]*): [A-Z]", code, re.M))
    secret_like = re.compile(r"(TOKEN|KEY|PASSWORD|HASH|SECRET)")
    variables = [t for t, cfg in by_target.items() if cfg.get("Type") == "Variable"]
    for var in variables:
        cfg = by_target[var]
        m = re.fullmatch(r"PPS_(SOURCES|TARGETS)_([A-Z0-9_]+?)_([A-Z0-9_]+)", var)
        if var in literals or (var == "TZ" and "TZ" in code):
            pass
        elif m and m.group(3).lower() in fields and f'apply_env(&mut table, "{m.group(1)}"' in code:
            pass
        else:
            problems.append(f"{var}: pps reads no such variable")
        if secret_like.search(var) and var not in ("PUID", "PGID") and cfg.get("Mask") != "true":
            problems.append(f"{var} is a secret but not masked (Mask=\"true\")")
    for secret in ("PPS_SERVER_TOKEN", "PPS_UI_PASSWORD_HASH"):
        if secret not in by_target:
            problems.append(f"no Variable {secret}")

    if problems:
        print("\n".join(problems))
        return 1
    print(f"{len(configs)} settings ({len(variables)} variables, "
          f"{sum(by_target[v].get('Mask') == 'true' for v in variables)} masked), all read by pps")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The Lambda zips: what machine each `bootstrap` was built for, and staging them for a deploy.

`serverless.yml` deploys target/deploy/<architecture>/<function>.zip. Only `stage` writes there,
and only after every zip's `bootstrap` proved to be an ELF binary for that architecture, so a zip
built for the other one (`./scripts/test` builds x86_64; the stack defaults to arm64) cannot be
deployed by mistake. It checks all of them before copying any.

    python3 artifacts.py stage --arch arm64 --from target/lambda --to target/deploy/arm64

`zip` packs already built binaries the way `cargo lambda build --output-format zip` does (one
executable `bootstrap` at the root). `./scripts/test` zips the debug binaries `cargo build` made
for the tests, rather than building every dependency a third time for another target: the staging,
the ELF check and `serverless package` see the same kind of zip a deploy does.

    python3 artifacts.py zip --from target/debug --to target/lambda
"""
import argparse
import shutil
import struct
import sys
import zipfile
from pathlib import Path

FUNCTIONS = ("connect", "disconnect", "default", "authorizer", "fanout")

# ELF e_machine values (the Lambda `Architectures` names on the left).
MACHINES = {"x86_64": 62, "arm64": 183}
MACHINE_NAMES = {number: name for name, number in MACHINES.items()}

ELF_MAGIC = b"\x7fELF"
ELF64 = 2
LITTLE_ENDIAN = 1
E_MACHINE_OFFSET = 18


class ArtifactError(Exception):
    """A zip that Lambda could not run; the message names the file and the reason."""


def bootstrap_machine(zip_path):
    """The e_machine of the `bootstrap` at the zip's root (Lambda runs exactly that file)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            try:
                info = archive.getinfo("bootstrap")
            except KeyError:
                raise ArtifactError(f"{zip_path}: no 'bootstrap' at the root") from None
            if not (info.external_attr >> 16) & 0o111:
                raise ArtifactError(f"{zip_path}: 'bootstrap' is not executable")
            with archive.open(info) as binary:
                header = binary.read(E_MACHINE_OFFSET + 2)
    except (OSError, zipfile.BadZipFile) as e:
        raise ArtifactError(f"{zip_path}: not a readable zip ({e})") from None
    if len(header) < E_MACHINE_OFFSET + 2 or not header.startswith(ELF_MAGIC):
        raise ArtifactError(f"{zip_path}: 'bootstrap' is not an ELF binary")
    if header[4] != ELF64 or header[5] != LITTLE_ENDIAN:
        raise ArtifactError(f"{zip_path}: 'bootstrap' is not a 64-bit little-endian ELF binary")
    return struct.unpack_from("<H", header, E_MACHINE_OFFSET)[0]


def architecture_problems(zip_path, architecture):
    """Why `zip_path` cannot run on a Lambda of `architecture`; empty when it can."""
    if architecture not in MACHINES:
        return [f"{zip_path}: unknown architecture {architecture!r} (expected one of {sorted(MACHINES)})"]
    try:
        machine = bootstrap_machine(zip_path)
    except ArtifactError as e:
        return [str(e)]
    if machine != MACHINES[architecture]:
        built = MACHINE_NAMES.get(machine, f"ELF machine {machine}")
        return [f"{zip_path}: 'bootstrap' is built for {built}, the function runs on {architecture}"]
    return []


def stage(architecture, source, target):
    """Copies <source>/<fn>/bootstrap.zip to <target>/<fn>.zip for every function, or nothing."""
    zips = {fn: Path(source) / fn / "bootstrap.zip" for fn in FUNCTIONS}
    problems = []
    for path in zips.values():
        if not path.is_file():
            problems.append(f"{path}: missing (cargo lambda build --release --output-format zip)")
        else:
            problems += architecture_problems(path, architecture)
    if problems:
        return problems
    Path(target).mkdir(parents=True, exist_ok=True)
    for fn, path in zips.items():
        shutil.copyfile(path, Path(target) / f"{fn}.zip")
    return []


def pack(binaries, target):
    """Writes <target>/<fn>/bootstrap.zip from the binary <binaries>/<fn>, for every function."""
    missing = [f"{Path(binaries) / fn}: missing (cargo build first)" for fn in FUNCTIONS
               if not (Path(binaries) / fn).is_file()]
    if missing:
        return missing
    for fn in FUNCTIONS:
        out = Path(target) / fn / "bootstrap.zip"
        out.parent.mkdir(parents=True, exist_ok=True)
        info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o100755 << 16)  # a regular, executable file
        info.compress_type = zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(out, "w") as archive, open(Path(binaries) / fn, "rb") as binary:
            with archive.open(info, "w") as entry:
                shutil.copyfileobj(binary, entry, 1 << 20)
    return []


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    staging = commands.add_parser("stage", help="check the zips' architecture, then copy them for serverless.yml")
    staging.add_argument("--arch", required=True, choices=sorted(MACHINES))
    staging.add_argument("--from", dest="source", required=True, help="cargo lambda's output directory")
    staging.add_argument("--to", dest="target", required=True, help="target/deploy/<arch>")
    packing = commands.add_parser("zip", help="zip built binaries as <to>/<fn>/bootstrap.zip")
    packing.add_argument("--from", dest="source", required=True, help="where cargo built the binaries")
    packing.add_argument("--to", dest="target", required=True, help="target/lambda")
    args = parser.parse_args(argv)
    if args.command == "zip":
        problems, done = pack(args.source, args.target), f"zipped into {args.target}"
    else:
        problems, done = stage(args.arch, args.source, args.target), f"{args.arch} zips staged in {args.target}"
    for problem in problems:
        print(f"artifacts: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"artifacts: {len(FUNCTIONS)} {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

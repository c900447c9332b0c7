"""Generate everything that comes from `proto/`.

Outputs (all committed, all checked for drift by `make check-generated`):
- Python messages, gRPC stubs and mypy stubs in the SDK (`clients/python/src`);
- `buf/validate/validate_pb2.py`, built from the copy embedded in protovalidate
  (no Buf Schema Registry here);
- `gateway/conduit.binpb`, the image Envoy's transcoder and `buf` read;
- the SDK's contract module `conduit/client/_contract.py` (method table, error reasons:
  `generate_sdk.py`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, duration_pb2, field_mask_pb2, timestamp_pb2
from grpc_tools import protoc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_sdk

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
SDK_SRC = ROOT / "clients" / "python" / "src"
IMAGE = ROOT / "gateway" / "conduit.binpb"
GENERATED_PACKAGES = ("conduit/options", "conduit/users", "conduit/articles", "conduit/search",
                      "conduit/realtime", "conduit/webhooks", "buf")
# Compiled into the image so Envoy can print google.rpc.Status with its details.
EXTRA_IMAGE_FILES = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def validate_descriptor_set() -> bytes:
    """buf/validate/validate.proto and its imports, as a FileDescriptorSet."""
    from protovalidate._gen.buf.validate import validate_pb

    fds = descriptor_pb2.FileDescriptorSet()
    for module in (descriptor_pb2, duration_pb2, field_mask_pb2, timestamp_pb2):
        module.DESCRIPTOR.CopyToProto(fds.file.add())
    fds.file.add().ParseFromString(validate_pb._DESC.proto.to_binary())
    return fds.SerializeToString()


def run_protoc(args: list[str]) -> None:
    code = protoc.main(["protoc", *args])
    if code != 0:
        sys.exit(f"protoc failed ({code}): {' '.join(args)}")


def generate(out_src: Path, image: Path, proto: Path = PROTO) -> None:
    googleapis = Path(annotations_pb2.__file__).resolve().parent.parent.parent
    wkt = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_src.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p.relative_to(proto)) for p in proto.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        validate_set = Path(tmp) / "validate.binpb"
        validate_set.write_bytes(validate_descriptor_set())
        includes = [f"--descriptor_set_in={validate_set}", f"-I{proto}", f"-I{googleapis}", f"-I{wkt}"]
        for package in GENERATED_PACKAGES:
            shutil.rmtree(out_src / package, ignore_errors=True)
        run_protoc([*includes, f"--python_out={out_src}", f"--mypy_out={out_src}",
                    "buf/validate/validate.proto"])
        run_protoc([*includes, f"--python_out={out_src}", f"--mypy_out={out_src}",
                    f"--grpc_python_out={out_src}", f"--mypy_grpc_out={out_src}", *sources])
        image.parent.mkdir(parents=True, exist_ok=True)
        run_protoc([*includes, "--include_imports", "--include_source_info",
                    f"--descriptor_set_out={image}", *sources, *EXTRA_IMAGE_FILES])
    for package in GENERATED_PACKAGES:
        for directory in [out_src / package, *(p for p in (out_src / package).rglob("*") if p.is_dir())]:
            (directory / "__init__.py").touch()
    contract = out_src / "conduit" / "client" / "_contract.py"
    contract.parent.mkdir(parents=True, exist_ok=True)
    generate_sdk.write(image, contract)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-src", type=Path, default=SDK_SRC)
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--proto", type=Path, default=PROTO, help="the buf module to read (default: proto/)")
    args = parser.parse_args()
    generate(args.out_src, args.image, args.proto)


if __name__ == "__main__":
    main()

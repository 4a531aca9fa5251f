"""Generated from proto/hourglass/v1 by scripts/gen_proto.sh. Do not edit."""

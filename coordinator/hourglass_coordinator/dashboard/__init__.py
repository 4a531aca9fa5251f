"""The web dashboard every coordinator can serve (`http_listen`): server-rendered pages over the
same JobsApi, ClusterApi and RunWatch as the gRPC API, behind the same tokens and the same
permission table (hourglass_coordinator.access.NEEDS)."""

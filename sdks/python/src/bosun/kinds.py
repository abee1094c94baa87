"""The catalogue of built-in Kubernetes kinds, so nobody types a plural by hand.

Each entry is the kind as k8s-openapi (and so the Rust SDK) describes it.
The host resolves every declared kind through API discovery and refuses a
module whose kinds the cluster does not serve, so a wrong entry fails a
load loudly rather than misbehaving.
"""

from __future__ import annotations

from ._kinds import Kind, Scope

_N = Scope.NAMESPACED
_C = Scope.CLUSTER

# core/v1
Pod = Kind("", "v1", "Pod", "pods", _N)
ConfigMap = Kind("", "v1", "ConfigMap", "configmaps", _N)
Secret = Kind("", "v1", "Secret", "secrets", _N)
Service = Kind("", "v1", "Service", "services", _N)
ServiceAccount = Kind("", "v1", "ServiceAccount", "serviceaccounts", _N)
PersistentVolumeClaim = Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", _N)
PersistentVolume = Kind("", "v1", "PersistentVolume", "persistentvolumes", _C)
Endpoints = Kind("", "v1", "Endpoints", "endpoints", _N)
LimitRange = Kind("", "v1", "LimitRange", "limitranges", _N)
ResourceQuota = Kind("", "v1", "ResourceQuota", "resourcequotas", _N)
Namespace = Kind("", "v1", "Namespace", "namespaces", _C)
Node = Kind("", "v1", "Node", "nodes", _C)

# apps/v1
Deployment = Kind("apps", "v1", "Deployment", "deployments", _N)
StatefulSet = Kind("apps", "v1", "StatefulSet", "statefulsets", _N)
DaemonSet = Kind("apps", "v1", "DaemonSet", "daemonsets", _N)
ReplicaSet = Kind("apps", "v1", "ReplicaSet", "replicasets", _N)

# batch/v1
Job = Kind("batch", "v1", "Job", "jobs", _N)
CronJob = Kind("batch", "v1", "CronJob", "cronjobs", _N)

# networking.k8s.io/v1
Ingress = Kind("networking.k8s.io", "v1", "Ingress", "ingresses", _N)
NetworkPolicy = Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", _N)

# policy/v1, autoscaling/v2, coordination.k8s.io/v1
PodDisruptionBudget = Kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", _N)
HorizontalPodAutoscaler = Kind(
    "autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", _N
)
Lease = Kind("coordination.k8s.io", "v1", "Lease", "leases", _N)

# rbac.authorization.k8s.io/v1
Role = Kind("rbac.authorization.k8s.io", "v1", "Role", "roles", _N)
RoleBinding = Kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", _N)
ClusterRole = Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", _C)
ClusterRoleBinding = Kind(
    "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", _C
)

ALL: tuple[Kind, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Kind))
"""Every kind in the catalogue."""

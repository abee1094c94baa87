// Package kinds is the catalogue of built-in Kubernetes kinds, so nobody
// types a plural by hand. Each entry is the kind as k8s-openapi (and so the
// Rust SDK) describes it; the host resolves every declared kind through
// API discovery, so a wrong entry fails a load loudly.
package kinds

import bosun "github.com/bosun-dev/bosun/sdks/go"

const (
	n = bosun.Namespaced
	c = bosun.Cluster
)

// core/v1
var (
	Pod                   = bosun.Kind{Group: "", Version: "v1", Kind: "Pod", Plural: "pods", Scope: n}
	ConfigMap             = bosun.Kind{Group: "", Version: "v1", Kind: "ConfigMap", Plural: "configmaps", Scope: n}
	Secret                = bosun.Kind{Group: "", Version: "v1", Kind: "Secret", Plural: "secrets", Scope: n}
	Service               = bosun.Kind{Group: "", Version: "v1", Kind: "Service", Plural: "services", Scope: n}
	ServiceAccount        = bosun.Kind{Group: "", Version: "v1", Kind: "ServiceAccount", Plural: "serviceaccounts", Scope: n}
	PersistentVolumeClaim = bosun.Kind{Group: "", Version: "v1", Kind: "PersistentVolumeClaim", Plural: "persistentvolumeclaims", Scope: n}
	PersistentVolume      = bosun.Kind{Group: "", Version: "v1", Kind: "PersistentVolume", Plural: "persistentvolumes", Scope: c}
	Endpoints             = bosun.Kind{Group: "", Version: "v1", Kind: "Endpoints", Plural: "endpoints", Scope: n}
	LimitRange            = bosun.Kind{Group: "", Version: "v1", Kind: "LimitRange", Plural: "limitranges", Scope: n}
	ResourceQuota         = bosun.Kind{Group: "", Version: "v1", Kind: "ResourceQuota", Plural: "resourcequotas", Scope: n}
	Namespace             = bosun.Kind{Group: "", Version: "v1", Kind: "Namespace", Plural: "namespaces", Scope: c}
	Node                  = bosun.Kind{Group: "", Version: "v1", Kind: "Node", Plural: "nodes", Scope: c}
)

// apps/v1
var (
	Deployment  = bosun.Kind{Group: "apps", Version: "v1", Kind: "Deployment", Plural: "deployments", Scope: n}
	StatefulSet = bosun.Kind{Group: "apps", Version: "v1", Kind: "StatefulSet", Plural: "statefulsets", Scope: n}
	DaemonSet   = bosun.Kind{Group: "apps", Version: "v1", Kind: "DaemonSet", Plural: "daemonsets", Scope: n}
	ReplicaSet  = bosun.Kind{Group: "apps", Version: "v1", Kind: "ReplicaSet", Plural: "replicasets", Scope: n}
)

// batch/v1
var (
	Job     = bosun.Kind{Group: "batch", Version: "v1", Kind: "Job", Plural: "jobs", Scope: n}
	CronJob = bosun.Kind{Group: "batch", Version: "v1", Kind: "CronJob", Plural: "cronjobs", Scope: n}
)

// networking.k8s.io/v1, policy/v1, autoscaling/v2, coordination.k8s.io/v1
var (
	Ingress                 = bosun.Kind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress", Plural: "ingresses", Scope: n}
	NetworkPolicy           = bosun.Kind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy", Plural: "networkpolicies", Scope: n}
	PodDisruptionBudget     = bosun.Kind{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget", Plural: "poddisruptionbudgets", Scope: n}
	HorizontalPodAutoscaler = bosun.Kind{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler", Plural: "horizontalpodautoscalers", Scope: n}
	Lease                   = bosun.Kind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease", Plural: "leases", Scope: n}
)

// rbac.authorization.k8s.io/v1
var (
	Role               = bosun.Kind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role", Plural: "roles", Scope: n}
	RoleBinding        = bosun.Kind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding", Plural: "rolebindings", Scope: n}
	ClusterRole        = bosun.Kind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole", Plural: "clusterroles", Scope: c}
	ClusterRoleBinding = bosun.Kind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding", Plural: "clusterrolebindings", Scope: c}
)

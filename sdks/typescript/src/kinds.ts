/**
 * The catalogue of built-in Kubernetes kinds, so nobody types a plural by hand.
 *
 * Each entry is the kind as k8s-openapi (and so the Rust SDK) describes it.
 * The host resolves every declared kind through API discovery and refuses a
 * module whose kinds the cluster does not serve, so a wrong entry fails a
 * load loudly rather than misbehaving.
 */

import { Kind } from "./kind.js";

const N = "namespaced";
const C = "cluster";

// core/v1
export const Pod = new Kind("", "v1", "Pod", "pods", N);
export const ConfigMap = new Kind("", "v1", "ConfigMap", "configmaps", N);
export const Secret = new Kind("", "v1", "Secret", "secrets", N);
export const Service = new Kind("", "v1", "Service", "services", N);
export const ServiceAccount = new Kind("", "v1", "ServiceAccount", "serviceaccounts", N);
export const PersistentVolumeClaim = new Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", N);
export const PersistentVolume = new Kind("", "v1", "PersistentVolume", "persistentvolumes", C);
export const Endpoints = new Kind("", "v1", "Endpoints", "endpoints", N);
export const LimitRange = new Kind("", "v1", "LimitRange", "limitranges", N);
export const ResourceQuota = new Kind("", "v1", "ResourceQuota", "resourcequotas", N);
export const Namespace = new Kind("", "v1", "Namespace", "namespaces", C);
export const Node = new Kind("", "v1", "Node", "nodes", C);

// apps/v1
export const Deployment = new Kind("apps", "v1", "Deployment", "deployments", N);
export const StatefulSet = new Kind("apps", "v1", "StatefulSet", "statefulsets", N);
export const DaemonSet = new Kind("apps", "v1", "DaemonSet", "daemonsets", N);
export const ReplicaSet = new Kind("apps", "v1", "ReplicaSet", "replicasets", N);

// batch/v1
export const Job = new Kind("batch", "v1", "Job", "jobs", N);
export const CronJob = new Kind("batch", "v1", "CronJob", "cronjobs", N);

// networking.k8s.io/v1
export const Ingress = new Kind("networking.k8s.io", "v1", "Ingress", "ingresses", N);
export const NetworkPolicy = new Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", N);

// policy/v1, autoscaling/v2, coordination.k8s.io/v1
export const PodDisruptionBudget = new Kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", N);
export const HorizontalPodAutoscaler = new Kind(
  "autoscaling",
  "v2",
  "HorizontalPodAutoscaler",
  "horizontalpodautoscalers",
  N,
);
export const Lease = new Kind("coordination.k8s.io", "v1", "Lease", "leases", N);

// rbac.authorization.k8s.io/v1
export const Role = new Kind("rbac.authorization.k8s.io", "v1", "Role", "roles", N);
export const RoleBinding = new Kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", N);
export const ClusterRole = new Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", C);
export const ClusterRoleBinding = new Kind(
  "rbac.authorization.k8s.io",
  "v1",
  "ClusterRoleBinding",
  "clusterrolebindings",
  C,
);

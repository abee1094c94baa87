/**
 * Light, hand-written types for the objects a reconciler meets: enough to
 * type the common fields of metadata, Pods and conditions, not a full
 * Kubernetes model (no generated API types: they would weigh on every
 * component and add nothing at run time, where objects are plain JSON).
 * Unknown fields are allowed everywhere, as the API server may add them.
 */

/** `metav1.ObjectMeta`, the fields reconcilers use. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  [field: string]: unknown;
}

/** Any Kubernetes object. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [field: string]: unknown;
}

/** A `metav1.Condition`. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** A container, the fields reconcilers usually set. */
export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; [field: string]: unknown }[];
  [field: string]: unknown;
}

/** A Pod, with its spec's common fields. */
export interface Pod extends KubeObject {
  spec?: {
    containers: Container[];
    restartPolicy?: "Always" | "OnFailure" | "Never";
    [field: string]: unknown;
  };
  status?: { phase?: string; [field: string]: unknown };
}

/** A ConfigMap. */
export interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

/** A Secret. */
export interface Secret extends KubeObject {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  type?: string;
}

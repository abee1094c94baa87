"""Typed shapes of common Kubernetes objects, as ``TypedDict``s.

Objects cross the host boundary as JSON, and a ``TypedDict`` is a plain
dict at run time: nothing to convert, fields the SDK does not describe are
kept as they are, and a type checker still catches a misspelt field. Only
the fields reconcilers commonly touch are described; ``total=False`` makes
every one optional, as in the API. Describe a custom resource the same way.
"""

from __future__ import annotations

from typing import Any, TypedDict


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    generation: int
    resourceVersion: str
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]
    finalizers: list[str]


class Condition(TypedDict, total=False):
    """``metav1.Condition``."""

    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


class EnvVar(TypedDict, total=False):
    name: str
    value: str


class ContainerPort(TypedDict, total=False):
    name: str
    containerPort: int
    protocol: str


class Container(TypedDict, total=False):
    name: str
    image: str
    command: list[str]
    args: list[str]
    env: list[EnvVar]
    ports: list[ContainerPort]
    resources: dict[str, Any]


class PodSpec(TypedDict, total=False):
    containers: list[Container]
    initContainers: list[Container]
    restartPolicy: str
    serviceAccountName: str
    nodeSelector: dict[str, str]
    volumes: list[dict[str, Any]]


class PodStatus(TypedDict, total=False):
    phase: str
    conditions: list[dict[str, Any]]
    podIP: str


class Pod(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus


class ConfigMap(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    data: dict[str, str]
    binaryData: dict[str, str]


class Secret(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    type: str
    data: dict[str, str]
    stringData: dict[str, str]


class ServicePort(TypedDict, total=False):
    name: str
    port: int
    targetPort: int | str
    protocol: str


class ServiceSpec(TypedDict, total=False):
    selector: dict[str, str]
    ports: list[ServicePort]
    type: str


class Service(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ServiceSpec
    status: dict[str, Any]


class PodTemplateSpec(TypedDict, total=False):
    metadata: ObjectMeta
    spec: PodSpec


class LabelSelector(TypedDict, total=False):
    matchLabels: dict[str, str]
    matchExpressions: list[dict[str, Any]]


class DeploymentSpec(TypedDict, total=False):
    replicas: int
    selector: LabelSelector
    template: PodTemplateSpec


class DeploymentStatus(TypedDict, total=False):
    replicas: int
    readyReplicas: int
    availableReplicas: int
    observedGeneration: int


class Deployment(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: DeploymentSpec
    status: DeploymentStatus

"""Kubernetes mode: pods get gpupool vGPUs through a scheduler extender, an admission webhook and a
pod lifecycle controller, without a device plugin (see docs/kubernetes.md).

Imported only by `gpupool serve --kube` and `gpupool kube ...`; the `kubernetes` client is imported
lazily, so gpupool installs and serves one machine without it (`pip install 'gpupool[kube]'`).
"""

from gpupool.kube.mode import DEFAULT_KUBE_PORT, KubeMode, KubeOptions

__all__ = ["DEFAULT_KUBE_PORT", "KubeMode", "KubeOptions"]

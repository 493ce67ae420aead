"""Kubernetes-only settings from kfp-kubernetes on one trivial task. The compiled file
carries them in its platform spec (a second YAML document, platforms.kubernetes).

Task hello (returns hello) has:
  kubernetes.use_secret_as_env: secret db-credentials, key password -> env DB_PASSWORD
  kubernetes.mount_pvc: existing PVC training-data mounted at /data
  kubernetes.add_node_selector: cloud.google.com/gke-accelerator=nvidia-tesla-t4
  kubernetes.set_image_pull_secrets: registry-key
None of these means anything on one machine: a local run reports each of the four as
not applicable (one note each, naming the setting), does not apply it, and otherwise
runs normally: the run succeeds, hello.Output = hello.
Its CPU request (.set_cpu_request('500m')) is reported the same way.
"""
from kfp import dsl, kubernetes

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def hello() -> str:
    return 'hello'


@dsl.pipeline(name='kubernetes')
def pipeline():
    task = hello()
    kubernetes.use_secret_as_env(
        task, secret_name='db-credentials', secret_key_to_env={'password': 'DB_PASSWORD'})
    kubernetes.mount_pvc(task, pvc_name='training-data', mount_path='/data')
    kubernetes.add_node_selector(
        task, label_key='cloud.google.com/gke-accelerator', label_value='nvidia-tesla-t4')
    kubernetes.set_image_pull_secrets(task, secret_names=['registry-key'])
    # A request schedules a pod on a cluster; only limits mean something locally.
    task.set_cpu_request('500m')

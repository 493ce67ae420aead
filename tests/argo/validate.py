"""Checks exported Argo Workflows against Argo's own schema, as the `hera` package ships it
(its models are generated from Argo Workflows' published OpenAPI definitions).

Usage: validate.py FILE...  (YAML or JSON; `Workflow` or `WorkflowTemplate`)

hera's models ignore fields they do not know, so a document is accepted only when it reads
back from the model unchanged: every field known, of its type, nothing dropped. Prints one
line per problem and exits 1 if there was any; prints nothing and exits 0 otherwise.
"""

import json
import sys

import yaml
from hera.workflows import models


def same(written, read, at, problems):
    """Compares what the file says with what the model read back from it."""
    if isinstance(written, dict):
        if not isinstance(read, dict):
            problems.append(f"{at}: expected {type(read).__name__}, found an object")
            return
        for key, value in written.items():
            if key not in read:
                problems.append(f"{at}.{key}: not a field of Argo's schema")
            else:
                same(value, read[key], f"{at}.{key}", problems)
    elif isinstance(written, list):
        if not isinstance(read, list) or len(read) != len(written):
            problems.append(f"{at}: expected a list")
            return
        for i, (w, r) in enumerate(zip(written, read)):
            same(w, r, f"{at}[{i}]", problems)
    elif written != read and str(written) != str(read):
        problems.append(f"{at}: {written!r} reads back as {read!r}")


def check(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    problems = []
    if doc.get("apiVersion") != "argoproj.io/v1alpha1":
        problems.append(f"apiVersion: expected argoproj.io/v1alpha1, found {doc.get('apiVersion')!r}")
    kind = doc.get("kind")
    model = {"Workflow": models.Workflow, "WorkflowTemplate": models.WorkflowTemplate}.get(kind)
    if model is None:
        return problems + [f"kind: expected Workflow or WorkflowTemplate, found {kind!r}"]
    try:
        parsed = model.model_validate(doc)
    except Exception as e:  # pydantic's ValidationError, with every problem on its lines
        return problems + [" ".join(str(e).split())]
    read = json.loads(parsed.model_dump_json(by_alias=True, exclude_none=True))
    same(doc, read, kind, problems)
    return problems


def main():
    failed = False
    for path in sys.argv[1:]:
        for problem in check(path):
            print(f"{path}: {problem}")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

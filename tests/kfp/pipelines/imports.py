"""dsl.importer of a file a pipeline parameter names, with metadata, read by a task.

Parameters: source: str (a text file's path or URI).
Tasks: import-given (dsl.importer of `source` as a Dataset, metadata {'origin':
'parameter'}); read-given (returns the file's text, then '|' and the metadata's origin):
for a file holding `rows`, read-given.Output = rows|parameter.
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def read(data: dsl.Input[dsl.Dataset]) -> str:
    with open(data.path) as f:
        return f.read() + '|' + str(data.metadata.get('origin', ''))


@dsl.pipeline(name='imports')
def pipeline(source: str):
    given = dsl.importer(
        artifact_uri=source,
        artifact_class=dsl.Dataset,
        metadata={'origin': 'parameter'},
    )
    given.set_display_name('import-given')
    read(data=given.output).set_display_name('read-given')

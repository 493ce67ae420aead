"""Pipeline parameters of every type, outputs of every kind, an artifact with metadata,
an f-string argument, the job and task name placeholders, and a Metrics artifact.

Parameters (all with defaults): a: float = 1.5, count: int = 2, who: str = 'ada-lovelace',
flag: bool = True, values: List[int] = [1, 2], options: Dict[str, int] = {'retries': 4}.

With the defaults, a run succeeds with these nine tasks, every one succeeded, recording
(parameter output values as text: strings raw, anything else as compact JSON):
  add           Output   = 3.5                      (a + 2.0; a float return)
  split-name    first    = ada                      (a NamedTuple: two outputs)
                parts    = 2
  shout         loud     = ADA-LOVELACE!            (written to a dsl.OutputPath(str))
  make-data     rows     = a Dataset artifact holding "a\nb\nc\n", metadata
                           {"rows": 3, "source": "letters"}
  describe      Output   = 3 lines: a,b,c; rows=3; source=letters
                           (read from the Dataset file and its metadata downstream)
  greet         Output   = 3.5-x                    (the argument f'{add.output}-x')
  identify      Output   = job=params-outputs task=identify
                           (dsl.PIPELINE_JOB_NAME_PLACEHOLDER and
                           dsl.PIPELINE_TASK_NAME_PLACEHOLDER; Sluice names the job
                           after the pipeline; KFP's local runner and a KFP cluster
                           append a timestamp or run id, job=params-outputs-<suffix>)
  settings      summary  = flag=True retries=4 values=[1, 2] count=2
                           (the bool, dict, list and int parameters as the step sees
                           them: whole numbers inside the dict and list stay integers,
                           as on a KFP cluster; KFP's own local runner passes them as
                           doubles and gives retries=4.0 values=[1.0, 2.0])
                config   = {"count":2,"retries":4,"total":6}
                negated  = false                    (a bool output)
  score         metrics  = a Metrics artifact with metadata {"accuracy": 0.9}

With --param a=2.25 --param who=grace-brewster-hopper --param flag=false
--param 'values=[5]' --param count=3 --param 'options={"retries": 1}':
  add.Output = 4.25; split-name.first = grace, split-name.parts = 3;
  shout.loud = GRACE-BREWSTER-HOPPER!; greet.Output = 4.25-x;
  settings.summary = flag=False retries=1 values=[5] count=3,
  settings.config = {"count":3,"retries":1,"total":15}, settings.negated = true;
  the other tasks record what they do with the defaults.
"""
from typing import Dict, List, NamedTuple

from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def add(a: float, b: float) -> float:
    return a + b


@dsl.component(base_image=IMAGE)
def split_name(full: str) -> NamedTuple('Parts', [('first', str), ('parts', int)]):
    pieces = full.split('-')
    return (pieces[0], len(pieces))


@dsl.component(base_image=IMAGE)
def shout(text: str, loud: dsl.OutputPath(str)):
    with open(loud, 'w') as f:
        f.write(text.upper() + '!')


@dsl.component(base_image=IMAGE)
def make_data(rows: dsl.Output[dsl.Dataset]):
    with open(rows.path, 'w') as f:
        f.write('a\nb\nc\n')
    rows.metadata['rows'] = 3
    rows.metadata['source'] = 'letters'


@dsl.component(base_image=IMAGE)
def describe(data: dsl.Input[dsl.Dataset]) -> str:
    with open(data.path) as f:
        lines = f.read().split()
    # int(): a metadata number may come back as 3.0 from a metadata store.
    rows = int(data.metadata['rows'])
    return f"{len(lines)} lines: {','.join(lines)}; rows={rows}; source={data.metadata['source']}"


@dsl.component(base_image=IMAGE)
def greet(text: str) -> str:
    return text


@dsl.component(base_image=IMAGE)
def identify(job: str, task: str) -> str:
    return f'job={job} task={task}'


@dsl.component(base_image=IMAGE)
def settings(
    flag: bool, options: dict, values: list, count: int
) -> NamedTuple('Settings', [('summary', str), ('config', dict), ('negated', bool)]):
    summary = f"flag={flag} retries={options['retries']} values={values} count={count}"
    config = {'count': count, 'retries': options['retries'], 'total': sum(values) * count}
    return (summary, config, not flag)


@dsl.component(base_image=IMAGE)
def score(metrics: dsl.Output[dsl.Metrics]):
    metrics.log_metric('accuracy', 0.9)


@dsl.pipeline(name='params-outputs')
def pipeline(
    a: float = 1.5,
    count: int = 2,
    who: str = 'ada-lovelace',
    flag: bool = True,
    values: List[int] = [1, 2],
    options: Dict[str, int] = {'retries': 4},
):
    total = add(a=a, b=2.0)
    split_name(full=who)
    shout(text=who)
    data = make_data()
    describe(data=data.outputs['rows'])
    greet(text=f'{total.output}-x')
    identify(job=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, task=dsl.PIPELINE_TASK_NAME_PLACEHOLDER)
    settings(flag=flag, options=options, values=values, count=count)
    score()

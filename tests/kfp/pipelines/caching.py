"""Task caching: one task cached (the default), one with .set_caching_options(False),
both running the same component with the same inputs.

Parameter: log_dir: str (required: an existing host directory; the steps run on the
host and write there).
Tasks: touch (caching on) and touch-2 (caching off; .after(touch), so the two never
race for the same cache entry). Each execution appends the line "ran" to
<log_dir>/touch.log and returns its tag, which is "same" for both.

First run with --param log_dir=DIR (empty cache): the run succeeds; both tasks execute;
  touch.Output = same, touch-2.Output = same; DIR/touch.log has 2 lines.
Second run, same parameters, same cache: the run succeeds; touch is a cache hit (not
  executed; its recorded Output is still same); touch-2 executes again (caching is off
  for it even though an entry for the same component and inputs exists);
  DIR/touch.log has 3 lines.
A run with caching disabled for the whole run (e.g. --no-cache) executes both tasks:
  DIR/touch.log grows by 2 lines.
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def touch(log_dir: str, tag: str) -> str:
    import os
    with open(os.path.join(log_dir, 'touch.log'), 'a') as f:
        f.write('ran\n')
    return tag


@dsl.pipeline(name='caching')
def pipeline(log_dir: str):
    cached = touch(log_dir=log_dir, tag='same')
    touch(log_dir=log_dir, tag='same').set_caching_options(False).after(cached)

"""Compiles every pipeline in tests/kfp/pipelines with the real KFP compiler.

Usage: python tests/kfp/compile.py OUTDIR

Each tests/kfp/pipelines/<stem>.py defines, at module level, a `@dsl.pipeline` function
named `pipeline`; it is compiled to OUTDIR/<stem>.yaml. Every file is tried; if any fails
to import or compile, each failure is reported on stderr and the exit status is 1.
"""
import importlib.util
import logging
import pathlib
import sys
import traceback
import warnings

warnings.filterwarnings('ignore')
logging.disable(logging.WARNING)
sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree

from kfp import compiler  # noqa: E402

PIPELINES = pathlib.Path(__file__).resolve().parent / 'pipelines'


def compile_one(source: pathlib.Path, out: pathlib.Path) -> None:
    # A private module name: a file such as kubernetes.py must not shadow a real package.
    name = f'sluice_kfp_test_{source.stem}'
    spec = importlib.util.spec_from_file_location(name, source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        pipeline = getattr(module, 'pipeline', None)
        if pipeline is None:
            raise LookupError('defines no module-level `pipeline`')
        compiler.Compiler().compile(pipeline, str(out / f'{source.stem}.yaml'))
    finally:
        del sys.modules[name]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(PIPELINES.glob('*.py'))
    if not sources:
        print(f'error: no pipelines in {PIPELINES}', file=sys.stderr)
        return 1
    failed = 0
    for source in sources:
        try:
            compile_one(source, out)
        except Exception as e:
            failed += 1
            last = traceback.extract_tb(e.__traceback__)[-1]
            print(f'error: {source.name} does not compile: {type(e).__name__}: {e}'
                  f' (at {last.filename}:{last.lineno})', file=sys.stderr)
    if failed:
        print(f'{failed} of {len(sources)} pipelines failed to compile', file=sys.stderr)
        return 1
    print(f'compiled {len(sources)} pipelines into {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

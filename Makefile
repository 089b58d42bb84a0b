# The README's two commands are `make demo` and `make test`; everything else is a helper.
.PHONY: env demo test lint pipeline bench clean

env:
	bash scripts/setup_env.sh

demo: env
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint: env
	.venv/bin/ruff check .

pipeline: env
	bash scripts/pipeline.sh

bench: env
	bash -c 'source scripts/ros_env.sh && .venv/bin/python -m benchmarks'

clean:
	rm -rf build install log out runs *.egg-info .pytest_cache .ruff_cache

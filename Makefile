# The README's two commands. Each sets up what it needs on a fresh Debian machine first.
VENV ?= .venv
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test setup

# Generate a world on the embedded default (no weights needed) and leave demo/fjord.glb behind.
demo:
	scripts/bootstrap.sh
	rm -rf demo
	$(VENV)/bin/worldgen pano "a misty fjord at dawn" -o demo/fjord.glb

test:
	scripts/bootstrap.sh --test
	$(VENV)/bin/python -m pytest -q

setup:
	scripts/bootstrap.sh

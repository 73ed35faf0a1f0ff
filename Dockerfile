# The project image: Ray's GPU image (same Ray version as the package) with iql-sweep installed.
#   docker build -t iql-sweep:latest .
FROM rayproject/ray:2.60.0-py311-gpu

WORKDIR /home/ray/iql-sweep
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users iql_sweep ./iql_sweep
COPY --chown=ray:users sweeps ./sweeps
COPY --chown=ray:users cluster ./cluster
# Ray's image has no torch: pip brings PyPI's CUDA build of torch with the project.
RUN pip install --no-cache-dir -e . \
    && python -c "import iql_sweep, torch, minari; print('iql-sweep', iql_sweep.__version__, 'torch', torch.__version__)" \
    && echo 'source /home/ray/iql-sweep/cluster/submit.bash' >> /home/ray/.bashrc

ENV MINARI_DATASETS_PATH=/workspace/results/minari \
    IQL_SWEEP_OUTPUT=/workspace/results \
    IQL_SWEEP_CACHE=/workspace/results/cache \
    WANDB_MODE=offline

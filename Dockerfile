# The channelflow image: the CLI with the flow, simulator and tools.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY channelflow ./channelflow
COPY flows ./flows
COPY operators ./operators
COPY config ./config
RUN pip install --no-cache-dir .
ENV CHANNELFLOW_CONFIG=/app/config/channelflow.toml
ENTRYPOINT ["channelflow"]
CMD ["run"]

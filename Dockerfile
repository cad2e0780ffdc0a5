# The ledger's one image: API (`referrals serve`), projection worker (`referrals project`),
# Kafka ingest worker (`referrals ingest`) and publication relay (`referrals relay`).
# docker-compose.yml picks the sub-command; configuration is REFERRALS_* environment only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY domain ./domain
COPY services ./services
COPY projections ./projections
COPY infra ./infra
COPY bench ./bench
# the exact versions CI tests (scripts/test installs with the same constraints)
RUN pip install -c requirements.lock . \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/referrals referrals

USER referrals
WORKDIR /var/lib/referrals
ENV REFERRALS_DATA_DIR=/var/lib/referrals
EXPOSE 8000

ENTRYPOINT ["referrals"]
CMD ["serve"]

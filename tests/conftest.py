pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
    "tests.fixtures.simulator",
    "tests.fixtures.pipeline",
    "tests.fixtures.dagster",
]

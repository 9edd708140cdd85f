from envrepro.cli import run

run()

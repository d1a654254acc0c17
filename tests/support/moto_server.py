"""Local S3 server for cosmount's tests: moto's server on 127.0.0.1 and a free port.

Prints "PORT <n>" once listening, then serves until its standard input closes, which happens
when the test process that started it exits, however it exits. No server outlives its tests.
"""
import sys

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(f"PORT {server.get_host_and_port()[1]}", flush=True)
sys.stdin.read()
server.stop()

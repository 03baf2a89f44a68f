"""A hand-written 4-server region: small enough to reason about and to enumerate every plan."""
from __future__ import annotations

import json
from pathlib import Path

SERVERS = """ServerID,Longitude,Latitude,NormalizedCompute,ComputationCapacity
T_a,8.00,47.00,1.0,40
T_b,8.10,47.05,0.5,20
T_c,8.30,46.90,0.25,10
T_d,8.05,47.20,0.75,30
"""
INSTANCES = """ModelInstanceID,ServerID,ModelTypeName,CostPerToken
i1,T_c,ChatGPT,0.0015
i2,T_a,ChatGPT,0.0015
i3,T_b,ChatGPT,0.0015
i4,T_d,ChatGPT,0.0015
i5,T_b,GPT-4,0.03
i6,T_d,GPT-4,0.03
i7,T_a,ChatGPT,0.0015
"""
LINKS = """SrcServerID,DstServerID,BaseLatencyMs,BandwidthMbps
T_a,T_b,0.4,50
T_b,T_a,0.4,50
T_b,T_c,0.5,50
T_c,T_d,2000,1
"""
TASKS = """TaskID,Split,TaskLongitude,TaskLatitude,TaskSize,RequiredModelTypes
t0,test,8.02,47.01,100,"[""ChatGPT"", ""GPT-4"", ""ChatGPT""]"
t1,test,8.20,46.95,300,"[""GPT-4"", ""ChatGPT""]"
t2,train,8.10,47.10,50,"[""ChatGPT"", ""ChatGPT"", ""GPT-4""]"
t3,train,8.00,47.00,20,"[""ChatGPT""]"
t4,train,8.25,47.15,500,"[""ChatGPT"", ""GPT-4""]"
"""
MAPPING = """TaskID,WorkflowStepIndex,MappedRequestID,RequiredModelType
t0,0,r1,ChatGPT
t0,1,r2,GPT-4
"""
REQUESTS = """RequestID,RequestLengthTokens,ResponseLengthTokens
r1,1000,200
r2,3000,500
"""
FILES = {"servers.csv": SERVERS, "model_instances.csv": INSTANCES, "network_links.csv": LINKS, "tasks.csv": TASKS,
         "task_request_mapping.csv": MAPPING, "request_log.csv": REQUESTS,
         "trap_config.json": json.dumps({"trap_server_ids": ["T_d"], "trap_cost_multiplier": 1.2})}


def write_tiny(folder: Path, **overrides: str) -> Path:
    """Write the tiny region to `folder`, with some files' text replaced (None deletes a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (FILES | overrides).items():
        if text is not None:
            (folder / name).write_text(text)
    return folder

# one server (the lowest serving GPU class, 112,300 KV tokens) hosting two model types: tests/edgesim/test_serving*.py
ONE_SERVER = {"servers.csv": "ServerID,Longitude,Latitude,NormalizedCompute,ComputationCapacity\nS,8.0,47.0,1.0,40\n",
              "model_instances.csv": "ModelInstanceID,ServerID,ModelTypeName,CostPerToken\n"
                                     "i1,S,ChatGPT,0.0015\ni2,S,GPT-4,0.03\n",
              "network_links.csv": "SrcServerID,DstServerID,BaseLatencyMs,BandwidthMbps\n",
              "task_request_mapping.csv": None, "request_log.csv": None,
              "trap_config.json": '{"trap_server_ids": []}'}

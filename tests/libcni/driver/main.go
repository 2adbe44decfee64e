// Copyright: podnet.mesh contributors
// GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later

// Command libcni-driver runs one libcni operation on a network configuration
// list, the way a container runtime built on libcni does, and prints what
// libcni returned as one JSON object on stdout.
//
// It is built by the libcni test suite (tests/libcni/conftest.py) in GOPATH
// mode against Debian's libcni sources (golang-github-appc-cni-dev).
//
// The request is a JSON object on stdin:
//
//	{"op": "add" | "check" | "del" | "cached",
//	 "conflist": "/path/to/net.conflist",
//	 "binDirs": ["/dir/of/plugins"], "cacheDir": "/libcni/cache",
//	 "containerID": "c1", "netns": "/run/netns/x", "ifname": "eth0",
//	 "args": [["K", "V"]], "capabilityArgs": {"portMappings": [...]}}
//
// The answer:
//
//	{"ok": true, "result": {...} | null}
//	{"ok": false, "error": {"code": 7, "msg": "...", "details": "..."}, "text": "<the error as libcni words it>"}
//
// error is the plugin's error object when libcni got one (code 0 otherwise).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

type request struct {
	Op             string                 `json:"op"`
	Conflist       string                 `json:"conflist"`
	BinDirs        []string               `json:"binDirs"`
	CacheDir       string                 `json:"cacheDir"`
	ContainerID    string                 `json:"containerID"`
	NetNS          string                 `json:"netns"`
	IfName         string                 `json:"ifname"`
	Args           [][2]string            `json:"args"`
	CapabilityArgs map[string]interface{} `json:"capabilityArgs"`
}

type failure struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
}

type answer struct {
	OK     bool        `json:"ok"`
	Result interface{} `json:"result"`
	Error  *failure    `json:"error,omitempty"`
	Text   string      `json:"text,omitempty"`
}

func run(req *request) (interface{}, error) {
	list, err := libcni.ConfListFromFile(req.Conflist)
	if err != nil {
		return nil, err
	}
	cni := libcni.NewCNIConfigWithCacheDir(req.BinDirs, req.CacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID:    req.ContainerID,
		NetNS:          req.NetNS,
		IfName:         req.IfName,
		Args:           req.Args,
		CapabilityArgs: req.CapabilityArgs,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch req.Op {
	case "add":
		return cni.AddNetworkList(ctx, list, rt)
	case "check":
		return nil, cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return nil, cni.DelNetworkList(ctx, list, rt)
	case "cached":
		return cni.GetNetworkListCachedResult(list, rt)
	}
	return nil, fmt.Errorf("unknown op %q (add, check, del, cached)", req.Op)
}

func main() {
	out := json.NewEncoder(os.Stdout)
	data, err := io.ReadAll(os.Stdin)
	req := &request{}
	if err == nil {
		err = json.Unmarshal(data, req)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "libcni-driver: bad request: %v\n", err)
		os.Exit(2)
	}
	result, err := run(req)
	if err != nil {
		ans := answer{Text: err.Error(), Error: &failure{Msg: err.Error()}}
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			ans.Error = &failure{Code: cniErr.Code, Msg: cniErr.Msg, Details: cniErr.Details}
		}
		_ = out.Encode(ans)
		return
	}
	if r, ok := result.(types.Result); ok && r == nil {
		result = nil
	}
	_ = out.Encode(answer{OK: true, Result: result})
}

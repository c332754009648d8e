#!/usr/bin/env python3
"""Build the rmmguard RMM catalogue (port-lists/tools/<id>.toml).

Inputs:
  * the public indicator data sets under --indicators (default: ../shared/indicators
    relative to the repository root);
  * the hand-curated overrides in port-lists/overrides/<id>.toml, which win over
    everything generated.

Outputs (all under port-lists/):
  * tools/<id>.toml             one file per tool, format described in README.md
  * DROPPED.md                  LOLRMM tools and upstream values that were dropped, with reasons
  * shared-infrastructure.txt   the shared-infrastructure deny list (read by the Rust tests)

The output is a pure function of the inputs: everything is sorted and no time stamps
are written.  `--check` regenerates in memory and exits 1 (listing the files) when the
files on disk differ.

Only the Python standard library and PyYAML are used.
"""

import argparse
import csv
import glob
import ipaddress
import json
import os
import re
import sys
import tomllib

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# --------------------------------------------------------------------------------------
# Vocabulary of the file format
# --------------------------------------------------------------------------------------

CATEGORIES = ("rmm", "remote-desktop", "tunnel")
CONFIDENCES = ("high", "medium", "low")
CONF_RANK = {"low": 0, "medium": 1, "high": 2}
KIND_ORDER = ("fingerprint", "domain", "ip", "port", "tls_alpn", "tls_cert",
              "http_user_agent", "http_uri", "ja4")
MATCH_VALUES = {
    "domain": ("suffix", "exact"),
    "tls_alpn": ("prefix", "exact"),
    "http_user_agent": ("contains", "prefix", "exact"),
    "http_uri": ("prefix", "exact", "contains"),
}
CERT_FIELDS = ("subject", "issuer", "any")
DATASETS = ("lolrmm", "lolrmm-extra", "rmml", "jischell", "redcanary", "sigma", "et24",
            "et26", "mthcht", "ditek", "top-tools", "vendor", "ndpi", "rfc", "corpus")
# Named matchers implemented on the Rust side.
FINGERPRINTS = {
    "teamviewer_tcp", "teamviewer_udp", "teamviewer_dyngate", "vnc_rfb", "rdp_x224",
    "rdp_udp", "anydesk_discovery", "screenconnect_relay", "splashtop_lan",
    "rustdesk_rendezvous", "rustdesk_nat_test", "radmin_handshake", "netsupport_http",
    "nomachine_banner", "citrix_ica", "citrix_cgp", "simplehelp_http", "ammyy_http",
    "dameware_mrc",
}
ID_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# --------------------------------------------------------------------------------------
# Curation tables
# --------------------------------------------------------------------------------------

# Shared infrastructure: a domain equal to or under one of these is never a `suffix`
# indicator.  Tenant-specific hosts under them become `exact`; generic ones are dropped
# (GENERIC_HOSTS below).  Written to shared-infrastructure.txt for the Rust tests.
SHARED_INFRA = sorted({
    # cloud providers / CDNs
    "amazonaws.com", "cloudfront.net", "awsstatic.com",
    "windows.net", "blob.core.windows.net", "servicebus.windows.net",
    "azureedge.net", "azurewebsites.net", "azure.com", "trafficmanager.net", "msedge.net",
    "googleapis.com", "google.com", "gstatic.com", "googleusercontent.com", "appspot.com",
    "firebaseapp.com", "web.app",
    "cloudflare.com", "cloudflare.net", "cloudflarestorage.com", "r2.dev", "pages.dev",
    "workers.dev",
    "akamai.net", "akamaized.net", "akamaiedge.net", "edgekey.net", "edgesuite.net",
    "fastly.net", "internapcdn.net", "herokuapp.com",
    # messaging / realtime / telephony platforms used by many products
    "pubnub.com", "pubnubapi.com", "pndsn.com", "twilio.com",
    # code hosting, SaaS and big-platform domains
    "github.com", "githubusercontent.com", "github.io", "ghcr.io",
    "microsoft.com", "live.com", "office.com", "apple.com", "icloud.com",
    "dropbox.com", "sentry.io", "zendesk.com",
    # download portals and archives (never a tool's own infrastructure)
    "softonic.com", "software.informer.com", "archive.org",
})

# Bare public suffixes (and registry-style second levels) that may never be an indicator.
PUBLIC_SUFFIXES = {
    "com", "net", "org", "io", "co", "me", "app", "dev", "ai", "cc", "xyz", "info", "biz",
    "de", "ru", "jp", "in", "cn", "eu", "uk", "au", "ca", "br", "kr", "fi", "nl", "hu",
    "it", "fr", "es", "us", "management", "cloud", "tech", "sh", "gg", "bot", "cyou",
    "co.uk", "com.au", "net.au", "com.cn", "com.br", "co.kr", "co.jp", "eu.com", "com.tr",
}

# Hosts that appear in upstream lists but are generic services contacted by everybody.
GENERIC_HOSTS = {
    "github.com": "GitHub itself; release downloads from GitHub are not a tool's infrastructure",
    "raw.githubusercontent.com": "generic GitHub content host",
    "objects.githubusercontent.com": "generic GitHub content host",
    "ghcr.io": "generic container registry",
    "pubsub.pubnub.com": "shared PubNub endpoint, not tool specific (top-tools row 4)",
    "ps.pndsn.com": "shared PubNub endpoint, not tool specific (top-tools row 4)",
    "cacerts.thawte.com": "public CA certificate host",
    "global.turn.twilio.com": "shared Twilio TURN service used by many WebRTC products",
    "global.stun.twilio.com": "shared Twilio STUN service used by many WebRTC products",
    "stunserver.stunprotocol.org": "public STUN server used by many products",
    "ingest.sentry.io": "shared Sentry error-reporting SaaS",
}

# Download portals and archives: pages about a tool, never its own infrastructure.
DOWNLOAD_PORTALS = ("softonic.com", "software.informer.com", "archive.org")

# Known-bad upstream values, dropped wherever they appear.
BAD_VALUES = {
    # LOLRMM level.yaml: typo for downloads.level.io; downloads.io is an unrelated domain.
    "downloads.io": "typo in LOLRMM level.yaml for downloads.level.io (unrelated domain)",
    # LOLRMM fleetdeck.yaml: 'zmazonaws' is a typo of amazonaws; checkip.amazonaws.com is a
    # shared AWS service anyway.
    "checkip.zmazonaws.com": "typo in LOLRMM fleetdeck.yaml (zmazonaws); the real host is a shared AWS service",
    # LOLRMM logmein_rescue.yaml: misspelt 'cetner'; logmein-gateway.com already covers it.
    "rescue-data-cetner.logmein-gateway.com": "misspelt host in LOLRMM logmein_rescue.yaml; covered by logmein-gateway.com",
    # RMML FleetDeck.yml / ditek: fleetdm.com is Fleet Device Management, another product.
    "fleetdm.com": "belongs to Fleet (fleetdm), a different product; listed under FleetDeck by mistake",
}

# Values dropped only for one tool: (tool id, value) -> reason.
BAD_FOR_TOOL = {
    ("tactical-rmm", "login.tailscale.com"):
        "Tailscale's login host, listed under Tactical RMM in LOLRMM; it belongs to the tailscale entry",
    ("tactical-rmm", "docs.tacticalrmm.com"):
        "documentation web site only; agents never contact it, and blocking it only stops people reading the docs",
}

# Placeholders that are not indicators.
PLACEHOLDERS = {"user_managed", "*", "*.", "", "n/a", "na", "none"}

# Vendor corporate domains that also serve unrelated products or the public web site:
# kept, but `low` with a note.
BROAD_VENDOR = {
    "adobeconnect.com", "basecamp.com", "comodo.com", "connectwise.com", "faronics.com",
    "freshworks.com", "goto.com", "idrive.com", "ivanti.com", "ivanticloud.com",
    "kaseya.com", "manageengine.com", "parallels.com", "qq.com", "solarwinds.com",
    "sophos.com", "sophosupd.com", "sophosupd.net", "zabbix.com", "tanium.com",
    "glpi-project.org", "nvaccess.org", "ninite.com", "rapid7.com", "invgate.com",
    "apache.org", "ericom.com", "logmeininc.com", "zoho.com", "taobao.com",
    "freshservice.com", "webex.com", "fortra.com", "electric.ai", "soti.net",
}

# Ports that must never be port indicators (generic services, STUN/TURN, web).
DENY_PORTS = {
    20: "FTP data", 21: "FTP", 22: "SSH", 23: "Telnet", 25: "SMTP", 53: "DNS",
    80: "HTTP", 123: "NTP", 135: "MS-RPC", 137: "NetBIOS", 138: "NetBIOS", 139: "NetBIOS",
    161: "SNMP", 443: "HTTPS", 445: "SMB", 3478: "STUN/TURN (shared by all WebRTC)",
    5349: "STUN/TURN over TLS (shared)", 8080: "generic HTTP alternate port",
    8443: "generic HTTPS alternate port", 4444: "generic (Metasploit default and others)",
}
# Ports kept only as `low` because unrelated software uses them too.
GENERIC_PORTS = {
    1234: "also VLC and many other programs", 5000: "also UPnP and many development servers",
    5222: "XMPP", 5555: "also Android Debug Bridge", 7070: "also RealServer and others",
    8000: "generic web port", 8200: "also other web services", 10000: "also Webmin",
    51820: "WireGuard default port, used by every WireGuard deployment",
    41641: "Tailscale/WireGuard peer port",
}
# LOLRMM ports carry no protocol: UDP where known, otherwise TCP.
UDP_PORTS = {("netbird", 51820), ("tailscale", 41641)}

# --------------------------------------------------------------------------------------
# Name -> id mapping.  LOLRMM is keyed by file stem; other data sets by their tool name.
# Anything not listed falls back to slug(name).
# --------------------------------------------------------------------------------------

LOLRMM_ID = {
    # ScreenConnect / ConnectWise Control
    "screenconnect": "screenconnect", "connectwise_control": "screenconnect",
    "connectwise": "screenconnect",
    "connectwise_automate_(labtech)": "connectwise-automate",
    "labtech_rmm_(now_connectwise_automate)": "connectwise-automate",
    "labteachconnectwiseautomate": "connectwise-automate",
    "itsupport247_(connectwise)": "itsupport247", "itsupport247connectwise": "itsupport247",
    "247ithelp.com_(connectwise)": "247ithelp",
    "level": "level", "level.io": "level", "levelio": "level",
    "fleetdeck": "fleetdeck", "zohoassist": "zoho-assist",
    "logmein": "logmein", "logmein_rescue": "logmein",
    "gotoassist": "goto-resolve", "gotoassist_(goto_resolve)": "goto-resolve",
    "gotoassist_agent_desktop_console": "goto-resolve", "gotomypc": "goto-resolve",
    "goto_opener": "goto-resolve",
    "kaseya": "kaseya-vsa", "electric_ai_(kaseya)": "electric-ai",
    "n-able_advanced_monitoring_agent": "n-able", "n-ableadvancedmonitoringagent": "n-able",
    "n-able_remote_access_software": "n-able", "beanywhere": "n-able",
    "ammyyadmin": "ammyy-admin", "radmin": "radmin",
    "remotepc": "remotepc", "access_remote_pc": "remotepc",
    "supremo": "supremo",
    # VNC protocol implementations without their own cloud service -> vnc
    "vnc": "vnc", "tigervnc": "vnc", "jollysfastvnc": "vnc", "mocha_vnc_lite": "vnc",
    "chicken_(of_the_vnc)": "vnc", "smartcode_web_vnc": "vnc",
    "realvnc": "realvnc", "vnc_connect": "realvnc",
    "ultravnc": "ultravnc", "ultra_vnc": "ultravnc", "pchelpware": "ultravnc",
    "tightvnc": "tightvnc",
    # RDP clients/servers/wrappers -> rdp (protocol-level detection)
    "mstsc": "rdp", "freerdp": "rdp", "xrdp": "rdp", "rdcman": "rdp", "rdclient": "rdp",
    "rdp2tcp": "rdp", "rdpview": "rdp", "rdpwrap": "rdp", "webrdp": "rdp",
    "chrome_remote_desktop": "chrome-remote-desktop", "tactical_rmm": "tactical-rmm",
    "dw_service": "dwservice", "pdq_connect": "pdq-connect",
    "ninjarmm": "ninjaone", "ninjaone_(formerly_ninjarmm)": "ninjaone",
    "pulseway": "pulseway",
    "beyondtrust": "beyondtrust", "beyondtrust_(bomgar)": "beyondtrust",
    "dameware": "dameware", "centrastage_(now_datto)": "datto-rmm",
    "syncro": "syncro", "kabuto": "syncro",
    "remote_utilities": "remote-utilities", "remoteutilities": "remote-utilities",
    "remote_manipulator_system": "remote-manipulator-system",
    "microsoft_quick_assist": "quick-assist", "quickassist": "quick-assist",
    "meshcentral": "meshcentral", "simplehelp": "simplehelp", "updatesimplehelp": "simplehelp",
    "rustdesk": "rustdesk", "splashtop": "splashtop", "splashtop_remote": "splashtop",
    "splashtopbeta": "splashtop", "netsupport_manager": "netsupport", "atera": "atera",
    "action1": "action1", "nomachine": "nomachine", "teamviewer": "teamviewer",
    "anydesk": "anydesk",
    "isl_light": "isl-online", "isl_online": "isl-online", "islonline": "isl-online",
    "itarian": "itarian", "comodo_rmm": "itarian",
    "instant_housecall": "instant-housecall", "instanthousecall": "instant-housecall",
    "lite_manager": "litemanager", "litemanager": "litemanager",
    "mionet_(also_known_as_wd_anywhere_access)": "mionet",
    "mionet_(wd_anywhere_access)": "mionet",
    "netop": "netop", "netop_remote_control_(aka_impero_connect)": "netop",
    "netop_remote_control_(impero_connect)": "netop", "imperoconnect": "netop",
    "pocket_controller": "soti-pocket-controller",
    "pocket_controller_(soti_xsight)": "soti-pocket-controller",
    "netviewer": "netviewer", "netviewer_(gotomeet)": "netviewer",
    "manageengine": "manageengine", "manage_engine_(desktop_central)": "manageengine-endpoint-central",
    "manageengine_rmm_central": "manageengine", "manageengine_servicedesk_plus": "manageengine-servicedesk-plus",
    "free_tools_launcher": "manageengine",
    "faronics_core": "faronics-core", "faronics_deep_freeze": "faronics-deep-freeze",
    "faronics_deploy": "faronics-deploy", "faronics_insight": "faronics-insight",
    "ericom_accessnow": "ericom", "ericom_connect": "ericom",
    "royal_apps": "royal-ts", "royal_server": "royal-ts", "royal_ts": "royal-ts",
    "landesk": "ivanti", "ivanti_remote_control": "ivanti", "res_automation_manager": "ivanti",
    "tanium": "tanium", "taniumdeploy": "tanium",
    "ehorus": "ehorus", "pandora_rc_(ehorus)": "ehorus",
    "psexec": "psexec", "psexec_(clone)": "psexec",
    "dev_tunnels_(aka_visual_studio_dev_tunnel)": "dev-tunnels",
    "visual_studio_dev_tunnel": "dev-tunnels",
    "cloudflare_tunnel": "cloudflare-tunnel", "ngrok": "ngrok", "tailscale": "tailscale",
    "zerotier": "zerotier", "remote.it": "remote-it", "senso.cloud": "senso-cloud",
    "i'm_intouch": "im-intouch", "fixme": "fixme-it", "gorelormm": "gorelo",
    "sophos-remote_management_system": "sophos-rms", "yandex.disk": "yandex-disk",
    "quest_kace_agent_(formerly_dell_kace)": "quest-kace",
    "absolute_(computrace)": "absolute", "acronis_cyber_protect_(remotix)": "acronis-cyber-protect",
    "webex_(remote_access)": "webex", "n-able": "n-able", "glpi": "glpi-agent",
    "mousewithoutborders": "mouse-without-borders", "aliwangwang-remote-control": "aliwangwang",
    "qq_im-remote_assistance": "qq-remote-assistance", "gatherplace-desktop_sharing": "gatherplace",
    "noteon-desktop_sharing": "noteon", "skyfex": "skyfex", "rodexrmm": "rodex-rmm",
    "dataplicity": "dataplicity", "localxpose": "localxpose", "pitunnel": "pitunnel",
    "netbird": "netbird", "shellhub": "shellhub", "teleport_connect": "teleport",
    "tmate": "tmate", "parsec": "parsec", "remotely": "remotely",
    "devolutions_remote_desktop_manager": "devolutions-rdm",
    "remote_desktop_manager_(devolutions)": "devolutions-rdm",
}

# Category per id (everything else is `rmm`).
CATEGORY = {
    "rdp": "remote-desktop", "vnc": "remote-desktop", "nomachine": "remote-desktop",
    "citrix": "remote-desktop",
    "ngrok": "tunnel", "cloudflare-tunnel": "tunnel", "tailscale": "tunnel",
    "zerotier": "tunnel", "dev-tunnels": "tunnel", "localxpose": "tunnel",
    "pitunnel": "tunnel", "netbird": "tunnel", "remote-it": "tunnel", "dataplicity": "tunnel",
    "twingate": "tunnel", "tmate": "tunnel", "shellhub": "tunnel", "teleport": "tunnel",
}

# RMML file stem -> id
RMML_ID = {
    "AnyDesk": "anydesk", "Atera": "atera", "BeyondTrust": "beyondtrust",
    "ChromeRemoteDesktop": "chrome-remote-desktop", "FleetDeck": "fleetdeck",
    "GoToMyPC": "goto-resolve", "GoToResolve": "goto-resolve", "Level.io": "level",
    "MeshCentral": "meshcentral", "N-Able": "n-able", "NetSupport": "netsupport",
    "NinjaRMM": "ninjaone", "NoMachine": "nomachine", "Pulseway": "pulseway",
    "QuickAssist": "quick-assist", "RustDesk": "rustdesk", "ScreenConnect": "screenconnect",
    "SimpleHelp": "simplehelp", "Splashtop": "splashtop", "Supremo": "supremo",
    "TacticalRMM": "tactical-rmm", "Tailscale": "tailscale", "TeamViewer": "teamviewer",
    "VSCodeTunnel": "dev-tunnels", "ZohoAssist": "zoho-assist", "jump_desktop": "jump-desktop",
    "ngrok": "ngrok",
}

# Red Canary Surveyor names -> id (only those that differ from slug(name) or merge).
REDCANARY_ID = {
    "AweRay (AweSun)": "aweray", "Ammyy Admin": "ammyy-admin", "BeyondTrust (Bomgar)": "beyondtrust",
    "ConnectWise Control": "screenconnect", "ScreenConnect": "screenconnect",
    "DW Service": "dwservice", "GoToMyPC": "goto-resolve", "Microsoft RDP": "rdp",
    "Microsoft TSC": "rdp", "NetSupport Manager": "netsupport", "PCAnywhere Client": "pcanywhere",
    "PCAnywhere Server": "pcanywhere", "Quick Assist": "quick-assist", "RAdmin": "radmin",
    "RemoteUtilities": "remote-utilities", "TeamViewer Desktop": "teamviewer",
    "TeamViewer Service": "teamviewer", "VNC": "vnc", "ITSupport247 (ConnectWise)": "itsupport247",
    "Zoho Assist": "zoho-assist", "Desktop Central": "manageengine-endpoint-central", "UltraView": "ultraviewer",
    "NinjaRMM": "ninjaone", "FleetDeck.io": "fleetdeck", "Level.io": "level", "FixMe": "fixme-it",
    "BeAnyWhere": "n-able", "Splashtop (Beta)": "splashtop", "GoToHTTP": "gotohttp",
    "LabTeach (Connectwise Automate)": "connectwise-automate",
    "N-Able Advanced Monitoring Agent": "n-able", "Impero Connect": "netop",
    "ISL Online": "isl-online", "ManageEngine": "manageengine-remote-access-plus", "Itarian": "itarian",
    "Instant Housecall": "instant-housecall", "GetScreen": "getscreen",
    "Rocket Remote Desktop": "rocket-remote-desktop",
}

# jischell-msft RMM_Tool -> id
JISCHELL_ID = {
    "action1": "action1", "addigy": "addigy", "aeroadmin": "aeroadmin", "alpemix": "alpemix",
    "ammyy": "ammyy-admin", "anydesk": "anydesk", "AnyplaceControl": "anyplace-control",
    "anyviewer": "anyviewer", "atera": "atera", "aweray": "aweray",
    "barracuda rmm": "barracuda", "beamyourscreen": "beamyourscreen",
    "beyondtrust": "beyondtrust", "chrome remote desktop": "chrome-remote-desktop",
    "connectwise": "screenconnect", "connectwise / Continuum Managed": "itsupport247",
    "Dameware": "dameware", "datto": "datto-rmm", "desktopNow": "desktopnow",
    "distantdesktop": "distant-desktop", "dwservice": "dwservice", "fleetdeck": "fleetdeck",
    "getscreen": "getscreen", "Iperius Remote": "iperius-remote", "ISL Online": "isl-online",
    "Itarian": "itarian", "JumpCloud": "jump-cloud", "Kaseya VSA": "kaseya-vsa",
    "level.io": "level", "LiteManager": "litemanager", "LogMeIn": "logmein",
    "meshcentral": "meshcentral", "mRemoteNG": "mremoteng", "MSP360": "msp360",
    "N-Able": "n-able", "NetSupport": "netsupport", "Ninja RMM": "ninjaone",
    "OptiTune": "optitune", "panorama9": "panorama9", "parsec": "parsec", "pcvisit": "pcvisit",
    "pdq": "pdq-connect", "pulseway": "pulseway", "RAdmin": "radmin", "realVNC": "realvnc",
    "remotepc": "remotepc", "rustdesk": "rustdesk", "screenmeet": "screenmeet",
    "server-eye": "servereye", "ShowMyPC": "showmypc", "Simple-Help": "simplehelp",
    "Splashtop": "splashtop", "SupRemo": "supremo", "SynchroMSP": "syncro",
    "Syspectr": "syspectr", "TacticalRMM": "tactical-rmm", "TeamViewer": "teamviewer",
    "TechInline": "fixme-it", "TSplus": "tsplus-remote-support", "UltraViewer": "ultraviewer",
    "XMReality": "xmreality", "ZohoAssist": "zoho-assist",
}

# jischell hosts whose tool label is wrong or too coarse -> id
JISCHELL_HOST_ID = {
    "gotoassist.com": "goto-resolve", "getgo.com": "goto-resolve", "goto.com": "goto-resolve",
    "goto-rtc.com": "goto-resolve", "gotomypc.com": "goto-resolve",
    "beanywhere.com": "n-able",  # listed under Dameware; BeAnywhere is N-able Take Control
    "autoupdate.mikogo4.com": "mikogo", "download.mikogo4.com": "mikogo",
    "webdb.mikogo4.com": "mikogo", "webdbmirror.mikogo4.com": "mikogo",
}

# ditekshen RMM_Inventory App (first line) -> id
DITEK_ID = {
    "FleetDeck Commander": "fleetdeck", "FleetDeck Agent": "fleetdeck",
    "ConnectWise Control (formerly ScreenConnect)": "screenconnect", "PDQConnect": "pdq-connect",
    "Pulseway pcmontask": "pulseway", "Pulseway pcmonitorsrv": "pulseway",
}

# mthcht files -> id; ports take the file's own confidence.
MTHCHT_PORT_FILES = {
    "anydesk_ports_list.csv": "anydesk", "teamviewer_ports_list.csv": "teamviewer",
    "RustDesk_ports_list.csv": "rustdesk", "Splashtop_ports_list.csv": "splashtop",
    "LogMeIn_ports_list.csv": "logmein", "RemotePC_ports_list.csv": "remotepc",
    "Dameware_ports_list.csv": "dameware", "GoToMyPC_ports_list.csv": "goto-resolve",
    "Google Remote Desktop_ports_list.csv": "chrome-remote-desktop",
    "ComodoRMM (Itarian RMM)_ports_list.csv": "itarian",
}
MTHCHT_UA_FILES = {
    "anydesk_http_user_agents_list.csv": "anydesk",
    "NetSupport_http_user_agents_list.csv": "netsupport",
    "meshcentral_http_user_agents_list.csv": "meshcentral",
}

# SigmaHQ remote-access domain rule: each listed domain -> id
SIGMA_RULE = "dns_query_win_remote_access_software_domains_non_browsers.yml"
SIGMA_DOMAIN_ID = {
    "agent.jumpcloud.com": "jump-cloud", "agentreporting.atera.com": "atera",
    "ammyy.com": "ammyy-admin", "api.parsec.app": "parsec", "api.playanext.com": "anydesk",
    "api.splashtop.com": "splashtop", "app.atera.com": "atera", "assist.zoho.com": "zoho-assist",
    "authentication.logmeininc.com": "logmein", "beyondtrustcloud.com": "beyondtrust",
    "cdn.kaseya.net": "kaseya-vsa", "client.teamviewer.com": "teamviewer",
    "comserver.corporate.beanywhere.com": "n-able", "control.connectwise.com": "screenconnect",
    "downloads.zohocdn.com": "zoho-assist", "dwservice.net": "dwservice",
    "express.gotoassist.com": "goto-resolve", "getgo.com": "goto-resolve",
    "getscreen.me": "getscreen", "integratedchat.teamviewer.com": "teamviewer",
    "join.zoho.com": "zoho-assist", "kickstart.jumpcloud.com": "jump-cloud",
    "license.bomgar.com": "beyondtrust", "logmein-gateway.com": "logmein",
    "logmein.com": "logmein", "logmeincdn.http.internapcdn.net": "logmein",
    "n-able.com": "n-able", "net.anydesk.com": "anydesk", "netsupportsoftware.com": "netsupport",
    "parsecusercontent.com": "parsec", "pubsub.atera.com": "atera",
    "relay.kaseya.net": "kaseya-vsa", "relay.screenconnect.com": "screenconnect",
    "relay.splashtop.com": "splashtop",
    "remoteassistance.support.services.microsoft.com": "quick-assist",
    "remotedesktop-pa.googleapis.com": "chrome-remote-desktop",
    "remoteutilities.com": "remote-utilities", "secure.logmeinrescue.com": "logmein",
    "services.vnc.com": "realvnc", "static.remotepc.com": "remotepc", "swi-rc.com": "dameware",
    "swi-tc.com": "n-able", "tailscale.com": "tailscale",
    "telemetry.servers.qetqo.com": "getscreen", "tmate.io": "tmate", "twingate.com": "twingate",
    "zohoassist.com": "zoho-assist",
}
SIGMA_OTHER = {
    "dns_query_win_devtunnels_communication.yml": "dev-tunnels",
    "dns_query_win_vscode_tunnel_communication.yml": "dev-tunnels",
    "dns_query_win_quickassist.yml": "quick-assist",
    "dns_query_win_teamviewer_domain_query_by_uncommon_app.yml": "teamviewer",
    "net_connection_win_domain_ngrok.yml": "ngrok",
    "net_connection_win_domain_ngrok_tunnel.yml": "ngrok",
}

# ET Open rule msg -> id (first match wins); domains come from dns.query / tls.sni buffers.
ET_MSG_ID = [
    (r"screenconnect|connectwise", "screenconnect"), (r"anydesk", "anydesk"),
    (r"teamviewer", "teamviewer"), (r"splashtop", "splashtop"),
    (r"syncro|kabuto|repairshopr", "syncro"), (r"rustdesk", "rustdesk"),
    (r"level\.io", "level"), (r"fleetdeck", "fleetdeck"), (r"remote utilities", "remote-utilities"),
    (r"zoho assist", "zoho-assist"), (r"centrastage", "datto-rmm"), (r"pulseway", "pulseway"),
    (r"teramind", "teramind"), (r"itarian|comodo", "itarian"), (r"getscreen", "getscreen"),
    (r"apoioviewer", "apoioviewer"), (r"agentreportingstore|packagesstore", "atera"),
]

# When two tools claim the same name space, the owner keeps it and the others lose it.
# value -> (owner id, reason).  Applies to the value and everything under it.
DOMAIN_OWNER = {
    "my.splashtop.com": ("splashtop", "TiFLUX only embeds Splashtop for remote control"),
    "islonline.net": ("isl-online", "Barracuda RMM uses ISL Online for remote control; the hosts are ISL's"),
    "itsupport247.net": ("itsupport247", "ConnectWise ITSupport247 (Continuum) has its own entry"),
    "connectwise.com": ("screenconnect", "ConnectWise corporate domain; kept on the ScreenConnect entry only"),
    "beanywhere.com": ("n-able", "BeAnywhere is N-able Take Control"),
    "swi-tc.com": ("n-able", "Take Control relay domain (N-able); Dameware Remote Everywhere shares it"),
    "kabuto.io": ("syncro", "Kabuto is Syncro's predecessor"),
    "remotedesktop.com": ("remotepc", "RemotePC (IDrive) domain"),
    "mikogo4.com": ("mikogo", "Mikogo's own domain (jischell lists it under BeamYourScreen)"),
    "atled.syspectr.com": ("syspectr", "Laplink Everywhere runs on Syspectr"),
}

FIELD_ORDER = ("kind", "value", "proto", "port", "match", "field", "confidence", "sources", "note")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def slug(name):
    s = name.lower().replace("&", " and ")
    s = re.sub(r"\(.*?\)", " ", s)
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s


def under(domain, suffix):
    return domain == suffix or domain.endswith("." + suffix)


def shared_infra_of(domain):
    for s in SHARED_INFRA:
        if under(domain, s):
            return s
    return None


class Log:
    """Collects everything dropped, for DROPPED.md."""

    def __init__(self):
        self.values = set()   # (tool, value, source, reason)

    def drop(self, tool, value, source, reason):
        self.values.add((tool, str(value), source, reason))


def norm_domain(raw):
    """Return (kind, value, generalised_from) or (None, reason, None)."""
    s = str(raw).strip()
    s = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", s)
    s = s.split("/", 1)[0]
    s = re.sub(r":\d+$", "", s)
    s = s.strip().lower().rstrip(".")
    if s in PLACEHOLDERS or s.startswith("<"):
        return None, "placeholder, not an indicator", None
    if " " in s:
        return None, "contains spaces", None
    if s.startswith("*."):
        s = s[2:]
    s = s.lstrip(".")
    try:
        ipaddress.ip_address(s)
        return "ip", s, None
    except ValueError:
        pass
    generalised = None
    labels = s.split(".")
    bad = [i for i, lab in enumerate(labels) if not LABEL_RE.match(lab)]
    if bad:
        if bad == [0] and re.search(r"[*\[\]{}]", labels[0]):
            generalised = s
            labels = labels[1:]
            s = ".".join(labels)
        elif any(re.search(r"[*\[\]{}]", labels[i]) for i in bad):
            return None, "wildcard or pattern in the middle of the name", None
        else:
            return None, "not a valid host name", None
    if len(labels) < 2 or s in PUBLIC_SUFFIXES:
        return None, "bare public suffix or incomplete name", None
    if not re.match(r"^(xn--[a-z0-9-]+|[a-z]{2,})$", labels[-1]):
        return None, "not a valid top-level domain", None
    if generalised and (s in PUBLIC_SUFFIXES or len(labels) < 2):
        return None, "pattern generalises to a public suffix", None
    return "domain", s, generalised


def port_range(p):
    p = str(p).strip()
    if "-" in p:
        a, b = p.split("-", 1)
        return int(a), int(b)
    return int(p), int(p)


# --------------------------------------------------------------------------------------
# Catalogue model
# --------------------------------------------------------------------------------------

class Catalogue:
    def __init__(self, log):
        self.tools = {}
        self.log = log

    def tool(self, tid, name=None, vendor_url=None, alias=None):
        t = self.tools.get(tid)
        if t is None:
            t = self.tools[tid] = {"id": tid, "name": None, "vendor_url": None, "aliases": set(),
                                   "notes": None, "category": None, "ind": {},
                                   "lol_files": set()}
        if name and t["name"] is None:
            t["name"] = name
        elif name and name != t["name"]:
            t["aliases"].add(name)
        if alias:
            t["aliases"].add(alias)
        if vendor_url and not t["vendor_url"]:
            t["vendor_url"] = vendor_url
        return t

    @staticmethod
    def key(ind):
        k = ind["kind"]
        if k == "port":
            return (k, ind["proto"], ind["port"])
        return (k, ind["value"])

    def add(self, tid, ind, source):
        t = self.tool(tid)
        ind = dict(ind)
        k = self.key(ind)
        cur = t["ind"].get(k)
        if cur is None:
            ind["sources"] = {source}
            t["ind"][k] = ind
            return
        cur["sources"].add(source)
        if CONF_RANK[ind["confidence"]] > CONF_RANK[cur["confidence"]]:
            cur["confidence"] = ind["confidence"]
        if ind.get("match") == "suffix" and cur.get("match") == "exact" and ind["kind"] == "domain":
            cur["match"] = "suffix"
        if ind.get("note") and not cur.get("note"):
            cur["note"] = ind["note"]

    def add_domain(self, tid, raw, source, confidence="high", note=None):
        kind, val, gen = norm_domain(raw)
        if kind is None:
            self.log.drop(tid, raw, source, val)
            return
        if kind == "ip":
            net = ipaddress.ip_network(val)
            self.add(tid, {"kind": "ip", "value": str(net), "confidence": "medium",
                           **({"note": note} if note else {})}, source)
            return
        if val in BAD_VALUES:
            self.log.drop(tid, raw, source, BAD_VALUES[val])
            return
        if (tid, val) in BAD_FOR_TOOL:
            self.log.drop(tid, raw, source, BAD_FOR_TOOL[(tid, val)])
            return
        for portal in DOWNLOAD_PORTALS:
            if under(val, portal):
                self.log.drop(tid, raw, source, f"download portal or archive ({portal}), not the tool's own infrastructure")
                return
        for g, why in GENERIC_HOSTS.items():
            if under(val, g):
                self.log.drop(tid, raw, source, why)
                return
        match = "suffix"
        shared = shared_infra_of(val)
        if shared:
            if val == shared:
                self.log.drop(tid, raw, source, f"is the shared-infrastructure suffix {shared}")
                return
            match = "exact"
            confidence = "medium" if CONF_RANK[confidence] > 1 else confidence
            note = note or f"host under shared infrastructure ({shared}); exact match only"
        if gen:
            confidence = "medium" if CONF_RANK[confidence] > 1 else confidence
            note = note or f"generalised from the upstream pattern '{gen}'"
        for b in BROAD_VENDOR:
            if val == b:
                confidence = "low"
                note = note or "vendor corporate domain that also serves other products and the public web site"
        ind = {"kind": "domain", "value": val, "match": match, "confidence": confidence}
        if note:
            ind["note"] = note
        self.add(tid, ind, source)

    def add_port(self, tid, port, proto, source, confidence="medium", note=None):
        try:
            lo, hi = port_range(port)
        except ValueError:
            self.log.drop(tid, f"{proto}/{port}", source, "not a port")
            return
        if hi - lo > 100:
            self.log.drop(tid, f"{proto}/{port}", source, "port range too wide to be an indicator")
            return
        for p in range(lo, hi + 1):
            if p in DENY_PORTS:
                self.log.drop(tid, f"{proto}/{p}", source,
                              f"port-only indicator on a shared port ({DENY_PORTS[p]})")
                if lo == hi:
                    return
        if lo != hi and any(p in DENY_PORTS for p in range(lo, hi + 1)):
            return
        if lo == hi and lo in GENERIC_PORTS:
            confidence = "low"
            note = note or f"weak: {GENERIC_PORTS[lo]}"
        ind = {"kind": "port", "proto": proto,
               "port": str(lo) if lo == hi else f"{lo}-{hi}", "confidence": confidence}
        if note:
            ind["note"] = note
        self.add(tid, ind, source)


# --------------------------------------------------------------------------------------
# Readers, one per data set
# --------------------------------------------------------------------------------------

THREAT_WORDS = re.compile(r"threat[- ]actor|abuse|phishing|c2 |malicious|china-nexus", re.I)


def read_lolrmm(ind_dir, cat, lol_tools):
    """LOLRMM yaml/: every file, including those without network indicators."""
    files = sorted(glob.glob(os.path.join(ind_dir, "lolrmm", "*.yaml")) +
                   glob.glob(os.path.join(ind_dir, "lolrmm", "*.yml")))
    name_to_id = {}
    for path in files:
        fname = os.path.basename(path)
        stem = re.sub(r"\.ya?ml$", "", fname)
        with open(path, encoding="utf-8") as fh:
            d = yaml.safe_load(fh)
        name = (d.get("Name") or stem).strip()
        tid = LOLRMM_ID.get(stem) or slug(name)
        name_to_id.setdefault(name, tid)
        website = ((d.get("Details") or {}).get("Website") or "").strip() or None
        src = f"lolrmm:{fname}"
        lol_tools.append((fname, name, tid))
        t = cat.tool(tid, name=name, vendor_url=website)
        t["lol_files"].add(fname)
        art = d.get("Artifacts") or {}
        for n in art.get("Network") or []:
            desc = n.get("Description") or ""
            threat = bool(THREAT_WORDS.search(desc))
            note = "reported as threat-actor infrastructure used with this tool" if threat else None
            conf = "medium" if threat else "high"
            for dom in n.get("Domains") or []:
                cat.add_domain(tid, dom, src, conf, note)
            for p in n.get("Ports") or []:
                proto = "udp" if (tid, int(str(p).split("-")[0])) in UDP_PORTS else "tcp"
                cat.add_port(tid, p, proto, src)
        for o in art.get("Other") or []:
            if str(o.get("Type", "")).lower().replace("-", "").replace(" ", "") == "useragent":
                v = str(o.get("Value", "")).strip()
                match = "exact"
                if v.endswith("*"):
                    v, match = v[:-1], "prefix"
                if v:
                    cat.add(tid, {"kind": "http_user_agent", "value": v, "match": match,
                                  "confidence": "medium"}, src)
    return name_to_id


def read_lolrmm_extra(ind_dir, cat, name_to_id):
    path = os.path.join(ind_dir, "lolrmm_extra", "rmm_domains.csv")
    with open(path, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            tid = name_to_id.get(row["RMM_Tool"].strip()) or slug(row["RMM_Tool"])
            cat.add_domain(tid, row["URI"], "lolrmm-extra:rmm_domains.csv")


def read_rmml(ind_dir, cat):
    for path in sorted(glob.glob(os.path.join(ind_dir, "rmml", "RMMs", "*.yml"))):
        fname = os.path.basename(path)
        stem = fname[:-4]
        tid = RMML_ID.get(stem) or slug(stem)
        with open(path, encoding="utf-8") as fh:
            d = yaml.safe_load(fh) or {}
        nc = d.get("NetConn") or {}
        src = f"rmml:{fname}"
        cat.tool(tid)
        for dom in nc.get("Domains") or []:
            cat.add_domain(tid, dom, src)
        for p in nc.get("Ports") or []:
            cat.add_port(tid, p, "tcp", src)
        for p in nc.get("UDPPorts") or []:
            cat.add_port(tid, p, "udp", src)


def read_redcanary(ind_dir, cat):
    with open(os.path.join(ind_dir, "redcanary_surveyor", "remote-admin.json"), encoding="utf-8") as fh:
        d = json.load(fh)
    for name in sorted(d):
        tid = REDCANARY_ID.get(name) or slug(name)
        cat.tool(tid, alias=None)
        for dom in d[name].get("domain") or []:
            cat.add_domain(tid, dom, "redcanary:remote-admin.json")


def read_jischell(ind_dir, cat):
    with open(os.path.join(ind_dir, "jischell_rmmtools", "RMM_SummaryNetworkURI.csv"), encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            host = row["URI"].strip().lower()
            tool = row["RMM_Tool"].strip()
            tid = JISCHELL_HOST_ID.get(host) or JISCHELL_ID.get(tool) or slug(tool)
            if "." not in host:
                cat.log.drop(tid, host, "jischell:RMM_SummaryNetworkURI.csv", "partial name without a domain")
                continue
            cat.add_domain(tid, host, "jischell:RMM_SummaryNetworkURI.csv")


def read_ditek(ind_dir, cat):
    with open(os.path.join(ind_dir, "ditekshen", "RMM_Inventory.csv"), encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    for row in rows[1:]:
        app = row[0].split("\n")[0].strip()
        tid = DITEK_ID.get(app)
        if not tid:
            continue
        for dom in row[7].split("\n"):
            dom = dom.strip()
            if not dom:
                continue
            if dom.startswith("*") and not dom.startswith("*."):
                # '*relay.screenconnect.com' style: generalise to the parent domain
                dom = "*." + dom.lstrip("*").split(".", 1)[1]
            cat.add_domain(tid, dom, "ditek:RMM_Inventory.csv")


def read_mthcht(ind_dir, cat):
    base = os.path.join(ind_dir, "mthcht_awesome_lists")
    for fname, tid in sorted(MTHCHT_PORT_FILES.items()):
        with open(os.path.join(base, fname), encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                conf = (row.get("metadata_confidence") or "medium").strip().lower()
                if conf not in CONFIDENCES:
                    conf = "medium"
                # mthcht confidences are for hunting; a port alone is never 'high' here,
                # overrides raise the distinctive ones.
                conf = "medium" if conf == "high" else conf
                cat.add_port(tid, row["dest_port"], "tcp", f"mthcht:{fname}", conf)
    for fname, tid in sorted(MTHCHT_UA_FILES.items()):
        with open(os.path.join(base, fname), encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                v = row["http_user_agent"].strip()
                match = "exact"
                if v.endswith("*"):
                    v, match = v[:-1], "prefix"
                cat.add(tid, {"kind": "http_user_agent", "value": v, "match": match,
                              "confidence": "medium"}, f"mthcht:{fname}")


def read_sigma(ind_dir, cat):
    base = os.path.join(ind_dir, "sigmahq")
    with open(os.path.join(base, SIGMA_RULE), encoding="utf-8") as fh:
        rule = yaml.safe_load(fh)
    sel = rule["detection"]["selection_generic"]["QueryName|endswith"]
    for dom in sel:
        tid = SIGMA_DOMAIN_ID.get(dom)
        if tid is None:
            cat.log.drop("?", dom, f"sigma:{SIGMA_RULE}", "no tool mapping in SIGMA_DOMAIN_ID")
            continue
        cat.add_domain(tid, dom, f"sigma:{SIGMA_RULE}")
    # selection_rustdesk: rs-*.rustdesk.com
    cat.add_domain("rustdesk", "rustdesk.com", f"sigma:{SIGMA_RULE}")
    for fname, tid in sorted(SIGMA_OTHER.items()):
        with open(os.path.join(base, fname), encoding="utf-8") as fh:
            rule = yaml.safe_load(fh)
        sel = rule["detection"]["selection"]
        vals = []
        for k, v in sel.items():
            if k.startswith(("QueryName", "DestinationHostname")):
                vals += v if isinstance(v, list) else [v]
        for v in vals:
            cat.add_domain(tid, v, f"sigma:{fname}")


ET_RULE_RE = re.compile(r"^#?alert\s.*\(msg:\"([^\"]+)\";(.*)\)\s*$")


def et_rules(path, section=None):
    """Yield (msg, body, sid) from a rules file; section 'A' limits to Section A."""
    in_a = False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if "===== Section A" in line:
                in_a = True
            elif "===== Section B" in line:
                in_a = False
            if section == "A" and not in_a:
                continue
            m = ET_RULE_RE.match(line.strip())
            if not m:
                continue
            sid = re.search(r"\bsid:(\d+);", m.group(2))
            if sid:
                yield m.group(1), m.group(2), sid.group(1)


def et_domains(body):
    """Host names from dns.query / tls.sni sticky buffers."""
    out = []
    for m in re.finditer(r"\b(dns\.query|dns_query|tls\.sni|tls_sni);(.*?)(?=\b(?:http\.|tls\.cert|flow|dsize|reference|classtype|metadata)|$)", body):
        for c in re.findall(r'content:"([^"|]+)"', m.group(2)):
            c = c.strip().lstrip(".")
            if "." in c:
                out.append(c)
    return out


def read_et(ind_dir, cat):
    base = os.path.join(ind_dir, "et_open")
    sets = [(os.path.join(base, "et_open_rmm_rules_2024-04.rules"), None, "et24"),
            (os.path.join(base, "emerging-remote-access-2026-and-2024.rules"), "A", "et26")]
    for path, section, ds in sets:
        for msg, body, sid in et_rules(path, section):
            doms = et_domains(body)
            if not doms:
                continue
            tid = None
            for rx, i in ET_MSG_ID:
                if re.search(rx, msg + " " + " ".join(doms), re.I):
                    tid = i
                    break
            if tid is None:
                cat.log.drop("?", ",".join(doms), f"{ds}:{sid}", "no tool mapping in ET_MSG_ID")
                continue
            for dom in doms:
                cat.add_domain(tid, dom, f"{ds}:{sid}")


# --------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------

def load_overrides():
    out = {}
    for path in sorted(glob.glob(os.path.join(HERE, "overrides", "*.toml"))):
        with open(path, "rb") as fh:
            d = tomllib.load(fh)
        stem = os.path.basename(path)[:-5]
        if d.get("id") != stem:
            raise SystemExit(f"{path}: id must equal the file stem")
        out[stem] = d
    return out


def drop_key(ind):
    k = ind["kind"]
    if k == "port":
        return f"port:{ind['proto']}:{ind['port']}"
    return f"{k}:{ind['value']}"


def apply_override(cat, ov, log):
    tid = ov["id"]
    t = cat.tool(tid)
    for f in ("name", "vendor_url", "notes", "category"):
        if f in ov:
            t[f] = ov[f]
            if f == "name":
                t["aliases"].discard(ov[f])
    for a in ov.get("aliases", []):
        t["aliases"].add(a)
    # drops
    drops = ov.get("drop", [])
    items = []
    for d in drops:
        if isinstance(d, str):
            items.append((d, ov.get("drop_reason") or ov.get("reason")))
        else:
            items.append((d["key"], d.get("reason")))
    for key, reason in items:
        if not reason:
            raise SystemExit(f"overrides/{tid}.toml: drop '{key}' needs a reason")
        hit = [k for k, ind in t["ind"].items() if drop_key(ind) == key]
        if not hit:
            raise SystemExit(f"overrides/{tid}.toml: drop '{key}' matches nothing (stale override?)")
        for k in hit:
            ind = t["ind"].pop(k)
            log.drop(tid, key.split(":", 1)[1], ", ".join(sorted(ind["sources"])), f"override: {reason}")
    # indicators: replace fields, union sources
    for ind in ov.get("indicator", []):
        ind = dict(ind)
        srcs = ind.pop("sources", None)
        if not srcs:
            raise SystemExit(f"overrides/{tid}.toml: indicator {ind} has no sources")
        if ind["kind"] == "port":
            ind["port"] = str(ind["port"])
        if ind["kind"] == "domain":
            ind.setdefault("match", "suffix")
        k = Catalogue.key(ind)
        cur = t["ind"].get(k)
        if cur is None:
            ind["sources"] = set(srcs)
            ind.setdefault("confidence", "high")
            t["ind"][k] = ind
        else:
            for f, v in ind.items():
                cur[f] = v
            cur["sources"] |= set(srcs)
        t["ind"][k]["hand"] = True


# --------------------------------------------------------------------------------------
# Overlap resolution
# --------------------------------------------------------------------------------------

def resolve_domain_overlaps(cat, log):
    # 1. owner table
    for tid, t in cat.tools.items():
        for k in list(t["ind"]):
            ind = t["ind"][k]
            if ind["kind"] != "domain":
                continue
            for val, (owner, why) in DOMAIN_OWNER.items():
                if owner != tid and under(ind["value"], val) and not ind.get("hand"):
                    t["ind"].pop(k)
                    log.drop(tid, ind["value"], ", ".join(sorted(ind["sources"])),
                             f"owned by `{owner}`: {why}")
                    break
    # 2. remaining overlaps get a note
    by_value = {}
    for tid, t in cat.tools.items():
        for ind in t["ind"].values():
            if ind["kind"] == "domain":
                by_value.setdefault(ind["value"], []).append((tid, ind))
    for val in sorted(by_value):
        labels = val.split(".")
        ancestors = [".".join(labels[i:]) for i in range(len(labels) - 1)]
        for tid, ind in by_value[val]:
            others = set()
            for anc in ancestors:
                for otid, oind in by_value.get(anc, []):
                    if otid == tid:
                        continue
                    if anc == val or oind["match"] == "suffix":
                        others.add((otid, oind["value"]))
                        if anc != val:
                            # the broader one needs no note; the narrower one gets it
                            pass
            if others:
                txt = "; ".join(f"`{o}` claims {v}" for o, v in sorted(others))
                auto = f"Overlap: {txt}. Shared vendor infrastructure; a match is reported for each."
                ind["note"] = (ind["note"] + " " + auto) if ind.get("note") else auto


def fold_contained_ports(cat):
    """Within one tool, a port already covered by a wider range of the same proto is
    folded into that range (its sources are kept)."""
    for t in cat.tools.values():
        ports = [(k, ind) for k, ind in t["ind"].items() if ind["kind"] == "port"]
        for k, ind in ports:
            lo, hi = port_range(ind["port"])
            for k2, ind2 in ports:
                if k2 == k or k2 not in t["ind"] or ind2["proto"] != ind["proto"]:
                    continue
                l2, h2 = port_range(ind2["port"])
                if l2 <= lo and hi <= h2 and (l2, h2) != (lo, hi):
                    ind2["sources"] |= ind["sources"]
                    t["ind"].pop(k, None)
                    break


def resolve_port_overlaps(cat):
    ports = []
    for tid, t in cat.tools.items():
        for ind in t["ind"].values():
            if ind["kind"] == "port":
                lo, hi = port_range(ind["port"])
                ports.append((ind["proto"], lo, hi, tid, ind))
    for proto, lo, hi, tid, ind in ports:
        others = sorted({(o_tid, o_ind["port"]) for p2, l2, h2, o_tid, o_ind in ports
                         if p2 == proto and o_tid != tid and l2 <= hi and lo <= h2})
        if others:
            txt = ", ".join(f"`{o}` ({proto}/{p})" for o, p in others)
            auto = f"Overlap: the same port is also listed for {txt}; a port alone cannot tell them apart."
            ind["note"] = (ind["note"] + " " + auto) if ind.get("note") else auto


# --------------------------------------------------------------------------------------
# Validation and output
# --------------------------------------------------------------------------------------

def validate_indicator(tid, ind):
    k = ind["kind"]
    where = f"{tid}: {drop_key(ind)}"
    assert k in KIND_ORDER, where
    assert ind.get("confidence") in CONFIDENCES, where + " confidence"
    assert ind.get("sources"), where + " sources"
    for s in ind["sources"]:
        ds = s.split(":", 1)[0]
        assert ds in DATASETS and ":" in s and s.split(":", 1)[1], f"{where}: bad source {s}"
    if k == "domain":
        assert ind["match"] in MATCH_VALUES["domain"], where
        v = ind["value"]
        assert v == v.lower() and not v.endswith(".") and not v.startswith("*"), where
        sh = shared_infra_of(v)
        assert not (sh and ind["match"] == "suffix"), where + f" suffix under shared {sh}"
        assert v not in PUBLIC_SUFFIXES, where
    elif k == "port":
        assert ind["proto"] in ("tcp", "udp"), where
        lo, hi = port_range(ind["port"])
        assert 0 < lo <= hi < 65536, where
        if lo == hi and lo in DENY_PORTS:
            assert ind["confidence"] == "low" and ind.get("note"), where + " deny-listed port"
    elif k == "ip":
        ipaddress.ip_network(ind["value"])
        assert "/" in ind["value"], where
    elif k == "fingerprint":
        assert ind["value"] in FINGERPRINTS, where + " unknown fingerprint"
    elif k == "tls_cert":
        assert ind.get("field") in CERT_FIELDS, where
    elif k in MATCH_VALUES:
        assert ind.get("match") in MATCH_VALUES[k], where


def sort_key(ind):
    k = ind["kind"]
    if k == "port":
        lo, hi = port_range(ind["port"])
        return (KIND_ORDER.index(k), ind["proto"], lo, hi, "")
    if k == "ip":
        net = ipaddress.ip_network(ind["value"])
        return (KIND_ORDER.index(k), str(net.version), int(net.network_address), net.prefixlen, "")
    return (KIND_ORDER.index(k), ind["value"], 0, 0, ind.get("match", ""))


def toml_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append("\\u%04X" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_val(v):
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_str(x) for x in v) + "]"
    return toml_str(str(v))


def render_tool(t):
    lines = [f"# Generated by port-lists/generate.py. Do not edit: change overrides/{t['id']}.toml",
             "# or the generator, then regenerate.", ""]
    lines.append(f"id = {toml_str(t['id'])}")
    lines.append(f"name = {toml_str(t['name'])}")
    lines.append(f"category = {toml_str(t['category'])}")
    if t.get("vendor_url"):
        lines.append(f"vendor_url = {toml_str(t['vendor_url'])}")
    aliases = sorted(a for a in t["aliases"] if a and a != t["name"])
    if aliases:
        lines.append(f"aliases = {toml_val(aliases)}")
    if t.get("notes"):
        lines.append(f"notes = {toml_str(t['notes'])}")
    for ind in sorted(t["ind"].values(), key=sort_key):
        lines.append("")
        lines.append("[[indicator]]")
        for f in FIELD_ORDER:
            if f not in ind:
                continue
            v = ind[f]
            if f == "sources":
                v = sorted(v)
            lines.append(f"{f} = {toml_val(v)}")
    return "\n".join(lines) + "\n"


def vendor_fallback(t):
    doms = sorted((ind["value"] for ind in t["ind"].values()
                   if ind["kind"] == "domain" and ind["match"] == "suffix"),
                  key=lambda d: (d.count("."), d))
    return f"https://{doms[0]}" if doms else None


def build(ind_dir):
    log = Log()
    cat = Catalogue(log)
    lol_tools = []
    name_to_id = read_lolrmm(ind_dir, cat, lol_tools)
    read_lolrmm_extra(ind_dir, cat, name_to_id)
    read_rmml(ind_dir, cat)
    read_redcanary(ind_dir, cat)
    read_jischell(ind_dir, cat)
    read_ditek(ind_dir, cat)
    read_mthcht(ind_dir, cat)
    read_sigma(ind_dir, cat)
    read_et(ind_dir, cat)
    overrides = load_overrides()
    for tid in sorted(overrides):
        apply_override(cat, overrides[tid], log)
    resolve_domain_overlaps(cat, log)
    fold_contained_ports(cat)
    resolve_port_overlaps(cat)

    files = {}
    kept, dropped_tools = {}, []
    for tid in sorted(cat.tools):
        t = cat.tools[tid]
        if not t["ind"]:
            dropped_tools.append(t)
            continue
        assert ID_RE.match(tid), tid
        t["name"] = t["name"] or tid
        t["category"] = t["category"] or CATEGORY.get(tid, "rmm")
        assert t["category"] in CATEGORIES, tid
        if not t["vendor_url"]:
            t["vendor_url"] = vendor_fallback(t)
        for ind in t["ind"].values():
            ind.pop("hand", None)
            validate_indicator(tid, ind)
        kept[tid] = t
        files[f"tools/{tid}.toml"] = render_tool(t)
    files["DROPPED.md"] = render_dropped(kept, dropped_tools, lol_tools, log)
    files["shared-infrastructure.txt"] = render_shared()
    return files, kept


def render_shared():
    lines = ["# Shared infrastructure: no `suffix` domain indicator may be equal to or under one",
             "# of these suffixes (a host under them may only be an `exact` indicator).",
             "# Generated by port-lists/generate.py (SHARED_INFRA); one suffix per line.",
             "# Lines starting with '#' and blank lines are comments."]
    return "\n".join(lines + SHARED_INFRA) + "\n"


def md_cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_dropped(kept, dropped_tools, lol_tools, log):
    out = ["# Dropped from the catalogue",
           "",
           "Generated by `port-lists/generate.py`; do not edit by hand.",
           "",
           "## LOLRMM entries",
           "",
           "Every LOLRMM file, with the catalogue entry it went into or the reason it was left out.",
           "",
           "| LOLRMM file | name | result |",
           "|---|---|---|"]
    for fname, name, tid in sorted(lol_tools):
        if tid in kept:
            res = f"in `{tid}`"
        else:
            res = "dropped: no usable network indicator (no domain, IP or distinctive port upstream"
            vals = sorted({v for (tt, v, s, r) in log.values if tt == tid and s == f"lolrmm:{fname}"})
            if vals:
                res += "; only: " + ", ".join(f"`{v}`" for v in vals)
            res += ")"
        out.append(f"| {md_cell(fname)} | {md_cell(name)} | {md_cell(res)} |")
    others = sorted(t["id"] for t in dropped_tools if not t["lol_files"])
    if others:
        out += ["", "## Other tool names without a usable network indicator", "",
                "Named by a non-LOLRMM data set (process or publisher data only): "
                + ", ".join(f"`{o}`" for o in others) + "."]
    out += ["", "## Upstream values not used", "",
            "| tool | value | source | reason |", "|---|---|---|---|"]
    for tid, val, src, reason in sorted(log.values):
        out.append(f"| {md_cell(tid)} | `{md_cell(val)}` | {md_cell(src)} | {md_cell(reason)} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--indicators", default=os.path.join(REPO, "..", "shared", "indicators"),
                    help="indicator data directory (default: ../shared/indicators from the repo root)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the committed files differ from what would be generated")
    ap.add_argument("--stats", action="store_true", help="print counts")
    args = ap.parse_args()
    files, kept = build(os.path.abspath(args.indicators))

    existing = {os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "tools", "*.toml"))}
    if args.check:
        bad = []
        for rel, content in sorted(files.items()):
            p = os.path.join(HERE, rel)
            try:
                with open(p, encoding="utf-8", newline="") as fh:
                    if fh.read() != content:
                        bad.append(f"differs: port-lists/{rel}")
            except FileNotFoundError:
                bad.append(f"missing: port-lists/{rel}")
        for rel in sorted(existing - set(files)):
            bad.append(f"stale:   port-lists/{rel}")
        if bad:
            print("port-lists are out of date; run `python3 port-lists/generate.py`:", file=sys.stderr)
            for b in bad:
                print("  " + b, file=sys.stderr)
            return 1
        print(f"port-lists up to date ({len(kept)} tools)")
    else:
        os.makedirs(os.path.join(HERE, "tools"), exist_ok=True)
        for rel in sorted(existing - set(files)):
            os.remove(os.path.join(HERE, rel))
        for rel, content in sorted(files.items()):
            p = os.path.join(HERE, rel)
            with open(p, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(content)
        print(f"wrote {len(kept)} tools")
    if args.stats or not args.check:
        by_cat, by_kind = {}, {}
        for t in kept.values():
            by_cat[t["category"]] = by_cat.get(t["category"], 0) + 1
            for ind in t["ind"].values():
                by_kind[ind["kind"]] = by_kind.get(ind["kind"], 0) + 1
        print("tools by category:", ", ".join(f"{k}={v}" for k, v in sorted(by_cat.items())))
        print("indicators by kind:", ", ".join(f"{k}={v}" for k, v in sorted(by_kind.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

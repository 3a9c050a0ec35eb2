// The package sample (Package Manager > npc-sdk NPC Dialogue > Samples > Blacksmith > Import): put it on the
// GameObject that carries NpcDialogue. Return says the next scripted line, with a screenshot of the frame; Escape
// stops the reply. A game would call Say() from its own dialogue UI instead.
using UnityEngine;

namespace NpcSdk.Samples
{
    [RequireComponent(typeof(NpcDialogue))]
    public sealed class BlacksmithTalk : MonoBehaviour
    {
        [Tooltip("Lines the player says, one per Return press, in order.")]
        public string[] lines =
        {
            "Good evening. Can you fix my sword?",
            "What do you see out there?",
            "Is the mine road safe at night?",
        };

        NpcDialogue dialogue;
        int next;

        void Awake()
        {
            dialogue = GetComponent<NpcDialogue>();
        }

        void Start()
        {
            dialogue.StartTalking();  // opens the session now, so the first line does not wait for it
        }

        void Update()
        {
            if (lines.Length > 0 && Input.GetKeyDown(KeyCode.Return))
            {
                dialogue.Say(lines[next]);
                next = (next + 1) % lines.Length;
            }
            if (Input.GetKeyDown(KeyCode.Escape)) dialogue.StopTalking();
        }
    }
}

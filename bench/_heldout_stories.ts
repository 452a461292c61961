/**
 * Held-out text for perplexity: short stories in the style of TinyStories (the data stories260K was trained
 * on), written for this project, so no model has seen them. The TinyStories data set itself is not
 * available offline here.
 *
 * @module
 */

/** Twelve short stories, one per entry. */
export const HELDOUT_STORIES: readonly string[] = [
  "Once upon a time, there was a little girl named Mia. She had a red ball. Every day she played with the ball in the garden. One day, the ball rolled under a big bush. Mia was sad. Her dog Max ran to the bush and pushed the ball out with his nose. Mia smiled and hugged Max. They played together until the sun went down.",
  'Tom liked to build towers with his blocks. He made a tall tower in his room. His little sister Sue wanted to help. Tom said, "Be careful, the tower can fall." Sue put one block on top very slowly. The tower did not fall. Tom and Sue clapped their hands. They were proud of their big tower.',
  "One day, a small bird sat on a tree. It was cold and the bird was hungry. A kind boy named Ben saw the bird. He went inside and came back with some bread. He put the bread on the ground. The bird flew down and ate it. Then the bird sang a happy song for Ben.",
  'Lily and her mom went to the park. The sun was warm and the sky was blue. Lily saw a duck in the pond. "Can I give the duck some food?" she asked. Her mom gave her a piece of bread. Lily threw the bread into the water. The duck swam fast and ate it. Lily laughed and waved goodbye to the duck.',
  "There was a big cat named Fluffy. Fluffy liked to sleep in the sun. One day, a little mouse came out of a hole. The mouse wanted to find some cheese. Fluffy opened one eye and saw the mouse. But Fluffy was too tired to run. The mouse took the cheese and ran back home. Fluffy went back to sleep.",
  'Sam had a new kite. It was blue and yellow. He went to the hill with his dad. The wind was strong. Sam ran and the kite went up into the sky. It flew very high, like a bird. Sam said, "Look, Dad! My kite is flying!" His dad smiled and said, "You did it, Sam!"',
  'Anna found a shiny rock on the beach. She wanted to show it to her friend Jack. She ran to Jack and opened her hand. "Wow, it is so pretty!" said Jack. They looked for more shiny rocks together. Soon they had a big pile. They put the rocks in a box and took them home.',
  'Once upon a time, a little bunny lived in the forest. The bunny was scared of the dark. One night, the bunny saw a bright light. It was a firefly. The firefly said, "Do not be scared. I will help you." The firefly flew next to the bunny all the way home. The bunny was not scared anymore.',
  "Max wanted to bake a cake for his mom. He got flour, eggs and sugar. His dad helped him mix everything in a big bowl. They put the cake in the oven. Soon the house smelled sweet. When mom came home, Max gave her the cake. Mom was very happy and gave Max a big kiss.",
  "It was a rainy day. Lucy could not go outside. She felt bored. Then she had an idea. She got paper and colors and drew a big rainbow. When the rain stopped, she looked out of the window. There was a real rainbow in the sky! Lucy smiled. It looked just like her picture.",
  "A little frog lived by a pond. He wanted to jump very far. Every day he tried to jump over a big log. One day he jumped very hard and he went over the log! His friends cheered for him. The little frog was so happy. He learned that if you try hard, you can do it.",
  'Ben and Mia were playing in the sand. They made a big castle with a tall tower. Then a wave came and took the castle away. Mia started to cry. Ben said, "Don\'t cry, we can make a new one." They worked together and made an even bigger castle. This time they made it far from the water.',
];
